"""noisemix: reproducible noisy-music manifests, rendering and verification.

Public API::

    from noisemix import load_manifest, Mixer
    manifest = load_manifest("manifests/demo", roots={"demo": "/data/demo"})
    audio = Mixer(manifest).mix(manifest.mixtures.iloc[0])
    result = mix_at_snr(clean, noise, snr_db=5.0, sample_rate=22050)   # your own arrays

Column names live in :mod:`noisemix.schema`. This package never imports torch.
"""

from importlib.metadata import PackageNotFoundError, version as _version

from .audio import load_mono
from .manifest import Manifest, load_manifest, load_renders, select_fold
from .mix import MixResult, Mixer, clean_reference_scale, mix_at_snr, mix_row

try:
    __version__ = _version("noisemix-dat")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0.1.0"

__all__ = ["Manifest", "load_manifest", "load_renders", "select_fold", "Mixer", "mix_row", "mix_at_snr", "clean_reference_scale", "MixResult", "load_mono",
           "__version__"]
