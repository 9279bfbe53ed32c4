"""Synthetic labelled manifests for tests and benchmarks of code that reads manifests (no
corpora needed; public, as ``dat``'s tests and anyone's own pipeline tests use it).

The audio is :mod:`noisemix.synthetic`'s (tags audible by construction, so even a tiny
model can learn them; noise of the three noisemix categories), written split by split.
The manifest is built by :func:`noisemix.build.build_manifest` (a grid: every clean segment
once as a clean reference row and once per SNR level with a noise of each category), so
tests read what users build.
"""

from __future__ import annotations

from pathlib import Path

from . import rng
from . import schema as S
from .build import build_manifest
from .io import write_text
from .sources import CorpusInput
from .spec import BuildSpec, SnrSpec
from .synthetic import music_audio, noise_audio, write_audio

__all__ = ["SYNTH_TAGS", "write_synthetic_manifest"]

SYNTH_TAGS = ["low", "high", "pulse"]
ROOT_NAME = "synth"


def clip_tags(number: int) -> list[str]:
    """Clip ``number``'s tags: its register (low or high), with ``pulse`` on every other pair,
    so every split of four clips or more has positives and negatives of each tag."""
    return ["low" if number % 2 else "high"] + (["pulse"] if number >> 1 & 1 else [])


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
    directory, audio_dir = Path(directory), Path(audio_dir)
    frames = segment + sample_rate // 10  # a little longer than the segment: offsets vary
    groups = ["path,category,group,split"]
    for split in S.SPLITS:
        for category in S.CATEGORIES:
            gen = rng.generator(seed, rng.stable_key("synthetic noise", split, category))
            write_audio(audio_dir / "noise" / split / f"{category}.wav",
                        noise_audio(gen, category, frames, sample_rate), sample_rate, subtype="FLOAT")
            groups.append(f"{split}/{category}.wav,{category},n-{split}-{category},{split}")
    tags_lines = ["path,tags,group,split"]
    for split in S.SPLITS:
        for i in range(clips.get(split, 0)):
            tags = clip_tags(i)
            gen = rng.generator(seed, rng.stable_key("synthetic clip", split, i))
            write_audio(audio_dir / "clean" / split / f"{i:03d}.wav", music_audio(gen, tags, frames, sample_rate),
                        sample_rate, subtype="FLOAT")
            tags_lines.append(f"{split}/{i:03d}.wav,{';'.join(tags) if labelled else ''},c-{split}-{i:03d},{split}")
    write_text("\n".join(groups) + "\n", audio_dir / "noise" / "groups.csv")
    write_text("\n".join(tags_lines) + "\n", audio_dir / "clean" / "tags.csv")
    inputs = [CorpusInput(ROOT_NAME, audio_dir, "clean", subdir="clean"),
              CorpusInput(ROOT_NAME, audio_dir, "noise", subdir="noise")]
    spec = BuildSpec(seed=seed, sample_rate=sample_rate, segment_frames=segment, max_segments_per_clip=1,
                     design="grid", snr=SnrSpec(levels_db=tuple(float(v) for v in snrs)))
    build_manifest(inputs, spec, directory, progress=False, tags=list(SYNTH_TAGS) if labelled else [])
    return directory
