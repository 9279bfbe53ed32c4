"""Synthetic audio: tagged tone music and three noise kinds, the one synthetic corpus.

It is labelled synthetic everywhere it appears. :func:`write_synthetic_corpus` writes it
as a corpus folder (tests, benchmarks and the offline quick start build from it);
:func:`noisemix.testing.write_synthetic_manifest` writes the same audio split by split and
builds a manifest of it (dat's tests). Real recordings come from ``noisemix corpus demo``.
The clean clips carry tags that are audible by construction (``low``/``high`` register,
``pulse`` rhythm, ``chord``, ``bright`` timbre), so a small tagger can learn them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from . import rng
from .io import atomic_path, write_text

__all__ = ["write_synthetic_corpus", "SYNTHETIC_TAGS", "music_audio", "noise_audio", "write_audio"]

SYNTHETIC_TAGS = ("low", "high", "pulse", "chord", "bright")


def music_audio(gen: np.random.Generator, tags, frames: int, rate: int) -> np.ndarray:
    """A clip whose ``tags`` are audible: ``low`` register (else high), ``chord``, ``bright``, ``pulse``."""
    t = np.arange(frames) / rate
    base = 110.0 * 2 ** (gen.integers(0, 12) / 12) * (1 if "low" in tags else 8)  # low 110-208 Hz, high 880-1661 Hz
    ratios = (1.0, 1.26, 1.5) if "chord" in tags else (1.0,)
    harmonics = 6 if "bright" in tags else 1
    x = sum(np.sin(2 * np.pi * base * r * h * t + gen.uniform(0, 6.3)) / h**1.2
            for r in ratios for h in range(1, harmonics + 1))
    if "pulse" in tags:
        x = x * (0.5 + 0.5 * np.sign(np.sin(2 * np.pi * gen.uniform(1.5, 3.0) * t)))
    return (0.5 * x / np.max(np.abs(x))).astype(np.float32)


def noise_audio(gen: np.random.Generator, category: str, frames: int, rate: int) -> np.ndarray:
    """A recording of noise ``category``: voiced bursts (speech), another melody (music), else swelling noise."""
    t = np.arange(frames) / rate
    if category == "speech":   # voiced bursts: harmonic buzz gated at a syllable rate
        f0 = gen.uniform(90, 220)
        buzz = sum(np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, 12))
        x = buzz * (np.sin(2 * np.pi * gen.uniform(3, 5) * t) > 0.2)
    elif category == "music":  # a different, interfering melody
        notes = 220 * 2 ** (gen.integers(0, 24, size=frames * 4 // rate + 1) / 12)
        x = np.sin(2 * np.pi * np.cumsum(np.repeat(notes, rate // 4 + 1)[:frames]) / rate)
    else:                      # coloured noise with slow swells
        white = gen.standard_normal(frames)
        x = np.cumsum(white) * 0.02 + white * gen.uniform(0.1, 1.0)
        x = x - np.convolve(x, np.ones(200) / 200, mode="same")
        x = x * (0.6 + 0.4 * np.sin(2 * np.pi * gen.uniform(0.1, 0.5) * t))
    return (0.4 * x / np.max(np.abs(x))).astype(np.float32)


def write_synthetic_corpus(out: Path, *, clips: int = 24, seconds: float = 6.0, noise_per_category: int = 12,
                           noise_seconds: float = 5.0, rate: int = 22050, seed: int = 0) -> Path:
    """Write ``out/clean`` (with tags.csv) and ``out/noise/<category>/<group>/`` (FLAC)."""
    out = Path(out)
    lines = ["path,tags,group"]
    for i in range(clips):
        gen = rng.generator(seed, rng.stable_key("clean", i))
        tags = {"low" if i % 2 else "high"} | {t for t in ("pulse", "chord", "bright") if gen.random() < 0.5}
        name = f"piece{i:03d}.flac"
        write_audio(out / "clean" / name, music_audio(gen, tags, int(seconds * (1 + 0.5 * (i % 3)) * rate), rate), rate)
        lines.append(f"{name},{';'.join(sorted(tags))},piece{i:03d}")
    write_text("\n".join(lines) + "\n", out / "clean" / "tags.csv")
    for category in ("environmental", "speech", "music"):
        for j in range(noise_per_category):
            gen = rng.generator(seed, rng.stable_key("noise", category, j))
            length = noise_seconds * (0.3 if j % 4 == 3 else 1.0)  # some shorter than a segment: looped
            write_audio(out / "noise" / category / f"rec{j:02d}" / "take.flac",
                        noise_audio(gen, category, int(length * rate), rate), rate)
    return out


def write_audio(path: Path, audio: np.ndarray, rate: int, subtype: str = "PCM_16") -> None:
    """Write ``audio`` atomically, in the format its suffix names (FLAC, WAV)."""
    with atomic_path(path) as tmp:
        sf.write(str(tmp), audio, rate, subtype=subtype, format=Path(path).suffix[1:].upper())
