"""noisemix: reproducible noisy-music manifests, rendering and verification.

Public API (what ``dat`` and your own code may use; everything else may change)::

    from noisemix import load_manifest, Mixer
    manifest = load_manifest("manifests/demo", roots={"demo": "/data/demo"})   # or parse_roots(["demo=/data"])
    row = manifest.split_rows("test").iloc[0]                 # rows are pandas records (noisemix.schema columns)
    audio = Mixer(manifest).mix(row)                          # float32, manifest.sample_rate, the row's length
    clean, noise = Mixer(manifest).stems(row)                 # the scaled stems that sum to it (noise: None)
    renders = load_renders("audio/", manifest)                # noisemix render's table; stale renders refused
    result = mix_at_snr(clean, noise, snr_db=5.0, sample_rate=22050)   # your own arrays
    dataset = MixtureDataset(manifest, "train")               # len() and [i] -> dict: any framework wraps it

Column names live in :mod:`noisemix.schema`; synthetic manifests for tests in
:mod:`noisemix.testing`. Errors a user can act on are :class:`NoisemixError` (bad
input, one line) and :class:`ManifestError` (a manifest or renders table that is wrong).
This package never imports torch.
"""

from importlib.metadata import PackageNotFoundError, version as _version

from .audio import load_mono
from .cache import decoded_dir
from .dataset import MixtureDataset
from .errors import NoisemixError
from .io import atomic_path, write_json, write_text
from .manifest import Manifest, load_manifest, select_fold
from .mix import MixResult, Mixer, clean_reference_scale, mix_at_snr, mix_row
from .render import load_renders, rendered_files
from .rng import stable_key
from .roots import parse_roots
from .schema import ManifestError
from .snr import snr_group_label, snr_groups

try:
    __version__ = _version("noisemix-dat")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0.1.0"

__all__ = [
    # manifests and rendered audio
    "Manifest", "load_manifest", "parse_roots", "select_fold", "load_renders", "rendered_files",
    # audio: mixing rows, your own arrays, decoding
    "MixtureDataset", "Mixer", "mix_row", "mix_at_snr", "MixResult", "clean_reference_scale", "load_mono", "decoded_dir",
    # reproducibility and outputs: seeds from stable keys, atomic writes
    "stable_key", "atomic_path", "write_text", "write_json",
    # grouping rows by SNR: a grid's levels, or 5 dB bins (one definition for tables and scores)
    "snr_groups", "snr_group_label",
    "NoisemixError", "ManifestError", "__version__",
]
