"""Where noisemix keeps what it can recompute: scan results, decoded audio, energy indexes."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir", "decoded_dir"]


def cache_dir() -> Path:
    """``$NOISEMIX_CACHE``, else ``$XDG_CACHE_HOME/noisemix``, else ``~/.cache/noisemix``."""
    explicit = os.environ.get("NOISEMIX_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "noisemix"


def decoded_dir() -> Path:
    """Decoded sources (one ``.npy`` per file hash, sample rate and resampler), shared by builds,
    renders (``--cache-dir``) and trainers.

    Entries are keyed by content, so every manifest and run can share them safely.
    """
    return cache_dir() / "decoded"
