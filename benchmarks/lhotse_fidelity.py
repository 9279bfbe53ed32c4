"""How close Lhotse's load_audio() of our export comes to our own mixing, per reason a cut is
not exact: the figures the README's export section quotes.

A synthetic corpus whose noise is rewritten at 16, 44.1 and 48 kHz and in stereo (as real
corpora come) is built into a manifest and exported with ``--format lhotse``; every cut is
loaded by Lhotse and compared with ``Mixer.mix`` of its row (float, before 16-bit rounding).
Prints, per reason (none: exact), the number of cuts and the worst and best error energy
relative to the signal, in dB.

    python benchmarks/lhotse_fidelity.py [--seed 3]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from noisemix import Mixer, load_manifest
from noisemix import schema as S
from noisemix.build import build_manifest
from noisemix.export import export_manifest
from noisemix.export.lhotse import INEXACT
from noisemix.sources import CorpusInput
from noisemix.spec import BuildSpec
from noisemix.synthetic import write_synthetic_corpus

FORMATS = [(16000, 1), (44100, 2), (48000, 1), (22050, 2)]  # noise rate and channels, in turn


def corpus(folder: Path) -> list[CorpusInput]:
    write_synthetic_corpus(folder, clips=6, seconds=4.0, noise_per_category=4)
    for k, path in enumerate(sorted((folder / "noise").rglob("*.flac"))):
        audio, rate = sf.read(path, dtype="float32")
        target, channels = FORMATS[k % len(FORMATS)]
        audio = soxr.resample(audio, rate, target)
        sf.write(path, np.stack([audio, 0.5 * audio[::-1]], axis=1) if channels == 2 else audio, target,
                 subtype="PCM_16", format="FLAC")
    return [CorpusInput("syn", folder, "clean", subdir="clean"), CorpusInput("syn", folder, "noise", subdir="noise")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    from lhotse import CutSet

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        build_manifest(corpus(tmp / "corpus"), BuildSpec(seed=args.seed, mixtures_per_segment=3), tmp / "m",
                       progress=False)
        export_manifest(tmp / "m", "lhotse", tmp / "cuts.jsonl.gz")
        manifest = load_manifest(tmp / "m")
        mixer, rows = Mixer(manifest), manifest.mixtures.set_index(S.MIXTURE_ID, drop=False)
        errors: dict[str, list[float]] = {}
        for cut in CutSet.from_jsonl(tmp / "cuts.jsonl.gz"):
            ours = mixer.mix(rows.loc[cut.id]).astype(np.float64)
            theirs = cut.load_audio(mono_downmix=True)[0].astype(np.float64)
            error = 10 * np.log10(np.sum((theirs - ours) ** 2) / np.sum(ours ** 2) + 1e-30)
            errors.setdefault(cut.custom.get(INEXACT, "") or "exact", []).append(error)
    for reason, values in sorted(errors.items()):
        print(f"{len(values):3d} cuts  worst {max(values):7.1f} dB  best {min(values):7.1f} dB  {reason}")


if __name__ == "__main__":
    main()
