"""Synthetic labelled manifests for tests and benchmarks of code that reads manifests (no
corpora needed; public, as ``dat``'s tests and anyone's own pipeline tests use it).

Clean "music" carries its tags audibly: ``low`` is a 220 Hz tone, ``high`` a 1760 Hz
tone, ``pulse`` an 8 Hz amplitude modulation, so even a tiny model can learn them.
Noise sources cover the three noisemix categories. The manifest is built by
:func:`noisemix.build.build_manifest` (a grid: every clean segment once as a clean reference
row and once per SNR level with a noise of each category), so tests read what users build.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from . import schema as S
from .build import build_manifest
from .io import write_text
from .sources import CorpusInput
from .spec import BuildSpec, SnrSpec

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


def _write(path: Path, audio: np.ndarray, rate: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), audio, rate, subtype="FLOAT")


def write_synthetic_manifest(directory: Path, audio_dir: Path, *, clips: dict | None = None, segment: int = 8748,
                             sample_rate: int = 22050, snrs=(0.0, 10.0), labelled: bool = True,
                             seed: int = 0) -> Path:
    """Write audio under ``audio_dir`` and build its manifest in ``directory`` with the real
    builder (a grid design); return ``directory``.

    ``clips`` gives clean clips per split (default train 24, valid 9, test 9); each split has
    one noise recording per category. Each clean clip yields one clean reference row and
    ``len(snrs) * 3`` noisy rows of one ``segment``-sample segment.
    """
    clips = clips or {"train": 24, "valid": 9, "test": 9}
    rng = np.random.default_rng(seed)
    directory, audio_dir = Path(directory), Path(audio_dir)
    frames = segment + sample_rate // 10  # a little longer than the segment: offsets vary
    groups = ["path,category,group,split"]
    for split in S.SPLITS:
        for category in S.CATEGORIES:
            _write(audio_dir / "noise" / split / f"{category}.wav", _noise_audio(category, frames, sample_rate, rng),
                   sample_rate)
            groups.append(f"{split}/{category}.wav,{category},n-{split}-{category},{split}")
    tags_lines = ["path,tags,group,split"]
    for split in S.SPLITS:
        for i in range(clips.get(split, 0)):
            # Cycle through all tag combinations so every split has positives and negatives.
            tags = [t for b, t in enumerate(SYNTH_TAGS) if (i + 1) >> b & 1] if i % 8 != 7 else []
            _write(audio_dir / "clean" / split / f"{i:03d}.wav", _clean_audio(tags, frames, sample_rate, rng),
                   sample_rate)
            tags_lines.append(f"{split}/{i:03d}.wav,{';'.join(tags) if labelled else ''},c-{split}-{i:03d},{split}")
    write_text("\n".join(groups) + "\n", audio_dir / "noise" / "groups.csv")
    write_text("\n".join(tags_lines) + "\n", audio_dir / "clean" / "tags.csv")
    inputs = [CorpusInput(ROOT_NAME, audio_dir, "clean", subdir="clean"),
              CorpusInput(ROOT_NAME, audio_dir, "noise", subdir="noise")]
    spec = BuildSpec(seed=seed, sample_rate=sample_rate, segment_frames=segment, max_segments_per_clip=1,
                     design="grid", snr=SnrSpec(levels_db=tuple(float(v) for v in snrs)))
    build_manifest(inputs, spec, directory, progress=False, tags=list(SYNTH_TAGS) if labelled else [])
    return directory
