"""16-bit FLAC output shared by the clean and the noise half of the corpus."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

__all__ = ["to_pcm16", "write_flac"]


def to_pcm16(audio: np.ndarray, peak: float | None = None) -> np.ndarray:
    """int16 samples; with ``peak`` the audio is first scaled so its maximum is ``peak``."""
    audio = np.asarray(audio, dtype=np.float64)
    if peak is not None:
        top = float(np.max(np.abs(audio))) if audio.size else 0.0
        if top > 0:
            audio = audio * (peak / top)
    return np.clip(np.round(audio * 32768.0), -32768, 32767).astype(np.int16)


def write_flac(pcm: np.ndarray, rate: int, target: Path) -> None:
    """Encode in memory, then write once: libsndfile's file-backed FLAC writer is slower.

    No metadata is written, so equal samples give equal bytes.
    """
    import soundfile as sf
    buffer = io.BytesIO()
    sf.write(buffer, pcm, rate, format="FLAC", subtype="PCM_16")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(buffer.getvalue())
