"""``python -m noisemix``: the noisemix command."""

from .cli import main

main()
