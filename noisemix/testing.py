"""Synthetic labelled manifests for tests and benchmarks of code that reads manifests (no
corpora needed; public, as ``dat``'s tests and anyone's own pipeline tests use it).

Clean "music" carries its tags audibly: ``low`` is a 220 Hz tone, ``high`` a 1760 Hz
tone, ``pulse`` an 8 Hz amplitude modulation, so even a tiny model can learn them.
Noise sources cover the three noisemix categories. Every clean segment appears once as
a clean reference row and once per SNR level mixed with a noise of each category, with
gains computed for the exact segments (the ``rms`` SNR definition).

Manifests are written with :func:`noisemix.manifest.write_manifest`.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import soundfile as sf

from . import schema as S
from .audio import sha256_file
from .dsp import noise_gain_for_snr
from .manifest import write_manifest

__all__ = ["SYNTH_TAGS", "write_synthetic_manifest"]

SYNTH_TAGS = ["low", "high", "pulse"]
ROOT_NAME = "synth"


def _clean_audio(tags: list[str], frames: int, rate: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(frames) / rate
    audio = 0.02 * rng.standard_normal(frames)
    if "low" in tags:
        audio += 0.4 * np.sin(2 * np.pi * 220 * t + rng.uniform(0, 2 * np.pi))
    if "high" in tags:
        audio += 0.4 * np.sin(2 * np.pi * 1760 * t + rng.uniform(0, 2 * np.pi))
    if "pulse" in tags:
        audio *= 0.5 * (1 + np.sin(2 * np.pi * 8 * t))
    return audio.astype(np.float32)


def _noise_audio(category: str, frames: int, rate: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(frames) / rate
    if category == "environmental":
        audio = rng.standard_normal(frames)
    elif category == "speech":  # syllable-rate bursts of noise
        audio = rng.standard_normal(frames) * (np.sin(2 * np.pi * 4 * t) > 0)
    else:  # other music: a 660 Hz chord tone with a fifth
        audio = np.sin(2 * np.pi * 660 * t) + np.sin(2 * np.pi * 990 * t)
    return (0.3 * audio / max(np.abs(audio).max(), 1e-9)).astype(np.float32)


def _write(path: Path, audio: np.ndarray, rate: int) -> tuple[str, int]:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), audio, rate, subtype="FLOAT")
    return sha256_file(path), audio.size


def _source_row(sid, rel, role, category, tags, group, split, sha, frames, rate) -> dict:
    return {S.SOURCE_ID: sid, S.ROOT: ROOT_NAME, S.PATH: rel, S.ROLE: role, S.CATEGORY: category,
            S.SUBCATEGORY: "", S.TAGS: tags, S.GROUP: group, S.SPLIT: split, S.DURATION_S: frames / rate,
            S.NUM_FRAMES: frames, S.SOURCE_SAMPLE_RATE: rate, S.CHANNELS: 1, S.SHA256: sha,
            S.AUDIO_FINGERPRINT: sha}


def write_synthetic_manifest(directory: Path, audio_dir: Path, *, clips: dict | None = None, segment: int = 8748,
                             sample_rate: int = 22050, snrs=(0.0, 10.0), labelled: bool = True,
                             seed: int = 0) -> Path:
    """Write audio under ``audio_dir`` and a manifest in ``directory``; return ``directory``.

    ``clips`` gives clean clips per split (default train 24, valid 9, test 9). Each clean
    clip yields one clean row and ``len(snrs) * 3`` noisy rows of ``segment`` samples.
    """
    clips = clips or {"train": 24, "valid": 9, "test": 9}
    rng = np.random.default_rng(seed)
    directory, audio_dir = Path(directory), Path(audio_dir)
    sources, mixtures = [], []
    frames = segment + sample_rate // 10  # a little longer than the segment: offsets vary
    noise = {}
    for split in S.SPLITS:
        for category in S.CATEGORIES:
            rel = f"noise/{split}/{category}.wav"
            audio = _noise_audio(category, frames, sample_rate, rng)
            sha, n = _write(audio_dir / rel, audio, sample_rate)
            sid = f"n-{split}-{category}"
            sources.append(_source_row(sid, rel, "noise", category, [], sid, split, sha, n, sample_rate))
            noise[split, category] = (sid, audio)
    for split in S.SPLITS:
        for i in range(clips.get(split, 0)):
            # Cycle through all tag combinations so every split has positives and negatives.
            tags = [t for b, t in enumerate(SYNTH_TAGS) if (i + 1) >> b & 1] if i % 8 != 7 else []
            audio = _clean_audio(tags, frames, sample_rate, rng)
            rel = f"clean/{split}/{i:03d}.wav"
            sha, n = _write(audio_dir / rel, audio, sample_rate)
            sid = f"c-{split}-{i:03d}"
            sources.append(_source_row(sid, rel, "clean", "", tags if labelled else [], sid, split, sha, n,
                                       sample_rate))
            offset = int(rng.integers(0, frames - segment + 1))
            clean_seg = audio[offset:offset + segment].astype(np.float64)
            base = {S.SPLIT: split, S.SAMPLE_RATE: sample_rate, S.CLEAN_SOURCE_ID: sid, S.CLEAN_OFFSET: offset,
                    S.NUM_OUTPUT_FRAMES: segment, S.DURATION_S: segment / sample_rate,
                    S.TAGS: tags if labelled else [], S.NOISE_TRANSFORMS: "[]", S.MIXTURE_TRANSFORMS: "[]",
                    S.NOISE_LOOPED: False, S.CLEAN_GAIN: 1.0}
            mixtures.append(dict(base, **{S.MIXTURE_ID: f"{sid}-clean", S.NOISE_SOURCE_ID: "", S.NOISE_CATEGORY: "",
                                          S.NOISE_SUBCATEGORY: "", S.NOISE_OFFSET: 0, S.SNR_DB: math.nan,
                                          S.NOISE_GAIN: 0.0}))
            for snr in snrs:
                for category in S.CATEGORIES:
                    nid, naudio = noise[split, category]
                    noff = int(rng.integers(0, frames - segment + 1))
                    nseg = naudio[noff:noff + segment].astype(np.float64)
                    gain = float(noise_gain_for_snr(np.mean(clean_seg ** 2), np.mean(nseg ** 2), snr))
                    mixtures.append(dict(base, **{
                        S.MIXTURE_ID: f"{sid}-{category}-{snr:g}", S.NOISE_SOURCE_ID: nid, S.NOISE_CATEGORY: category,
                        S.NOISE_SUBCATEGORY: "", S.NOISE_OFFSET: noff, S.SNR_DB: float(snr), S.NOISE_GAIN: gain}))
    info = {"tool_version": "synthetic", "spec": {"sample_rate": sample_rate, "snr_definition": "rms"},
            "seed": seed, "resampler": "none", "roots": {ROOT_NAME: str(audio_dir)}, "fingerprints": {},
            "report": {}, "tags": list(SYNTH_TAGS) if labelled else []}
    write_manifest(directory, pa.Table.from_pylist(sources, schema=S.SOURCES_SCHEMA),
                   pa.Table.from_pylist(mixtures, schema=S.MIXTURES_SCHEMA), info)
    return directory
