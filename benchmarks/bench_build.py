"""Build time for ~1,000,000 mixtures over 10,000 sources, metadata only (no decoding).

The sources table and per-source energy indexes are synthesised in memory (what a scan
of a 10,000-file corpus leaves in the cache); the timed part is exactly what
`noisemix build` does after scanning: split assignment, drawing every mixture,
exact gains from the energy index, and writing the manifest.

    python benchmarks/bench_build.py [--clean 8000] [--noise 2000] [--mixtures-per-segment 11]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from noisemix import schema as S
from noisemix.build import BuildReport, assign_splits, plan_mixtures
from noisemix.energy import SourceIndex, block_size_for, PEAK_GROUP
from noisemix.manifest import frame_to_table, write_manifest
from noisemix.spec import BuildSpec


def synthetic_sources(clean: int, noise: int, seconds: float, rate: int, block: int, seed: int = 0):
    gen = np.random.default_rng(seed)
    count = clean + noise
    frames = np.full(count, int(seconds * rate), dtype=np.int64)
    role = np.array(["clean"] * clean + ["noise"] * noise, dtype=object)
    category = np.array([""] * clean + [S.CATEGORIES[i % 3] for i in range(noise)], dtype=object)
    sources = pd.DataFrame({
        S.SOURCE_ID: [f"{i:016x}" for i in range(count)], S.ROOT: "bench",
        S.PATH: [f"{r}/{i:06d}.flac" for i, r in enumerate(role)], S.ROLE: role, S.CATEGORY: category,
        S.SUBCATEGORY: "", S.TAGS: [["rock"] if i % 2 else ["piano", "slow"] for i in range(count)],
        S.GROUP: [f"group{i // 4}" for i in range(count)], S.SPLIT: "", S.DURATION_S: seconds,
        S.SOURCE_FRAMES: frames, S.SOURCE_SAMPLE_RATE: rate, S.CHANNELS: 1,
        S.SHA256: [f"{i:064x}" for i in range(count)], S.AUDIO_FINGERPRINT: "",
    })
    blocks = -(-frames[0] // block)
    groups = -(-frames[0] // (block * PEAK_GROUP))
    parts = [(int(frames[0]),
              np.concatenate([[0.0], np.cumsum(gen.uniform(0.1, 1.0, blocks) * block * 0.01)]),
              np.concatenate([gen.uniform(0.2, 0.9, groups), [0.0]]).astype(np.float32)) for _ in range(count)]
    return sources, SourceIndex.concatenate(block, parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clean", type=int, default=8000)
    parser.add_argument("--noise", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--mixtures-per-segment", type=int, default=11)
    args = parser.parse_args()
    spec = BuildSpec(mixtures_per_segment=args.mixtures_per_segment)
    sources, index = synthetic_sources(args.clean, args.noise, args.seconds, spec.sample_rate,
                                       block_size_for(spec.segment_frames))
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        sources = assign_splits(sources, spec.split_fractions)
        mixtures = plan_mixtures(sources, index, spec, {"bench": Path(tmp)}, None, BuildReport())
        planned = time.perf_counter()
        write_manifest(Path(tmp) / "m", frame_to_table(sources, S.SOURCES_SCHEMA),
                       frame_to_table(mixtures, S.MIXTURES_SCHEMA),
                       {"tool_version": "bench", "spec": spec.to_dict(), "seed": 0, "resampler": "", "roots": {},
                        "report": {}, "tags": []})
        written = time.perf_counter()
    print(f"sources: {len(sources):,}  mixtures: {len(mixtures):,}")
    print(f"plan (draws + gains): {planned - start:6.2f} s")
    print(f"write manifest:       {written - planned:6.2f} s")
    print(f"total:                {written - start:6.2f} s  (target < 30 s)")


if __name__ == "__main__":
    main()
