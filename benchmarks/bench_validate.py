"""Row validation on load (noisemix.validate) for ~1,000,000 mixtures, beside a row loop.

The committed demo manifest's rows are tiled to the requested size (fresh mixture ids,
same sources) and validated as ``load_manifest`` does, with every check; the comparison
is the same checks written as a plain loop over rows, what a user would write without
vectorising (timed on a sample and scaled, as it takes minutes at full size).

    python benchmarks/bench_validate.py [--rows 1000000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from noisemix import load_manifest
from noisemix import schema as S
from noisemix.validate import frames_at_rate, validate_rows

DEMO = Path(__file__).resolve().parents[1] / "manifests" / "demo"


def tiled(rows: int):
    manifest = load_manifest(DEMO)
    copies = math.ceil(rows / len(manifest.mixtures))
    mixtures = pd.concat([manifest.mixtures] * copies, ignore_index=True).head(rows)
    mixtures[S.MIXTURE_ID] = [f"m{i:08d}" for i in range(rows)]
    columns = [S.TAGS, S.CLEAN_SOURCE_ID, S.NOISE_SOURCE_ID, S.NOISE_NEXT_IDS]
    table = pa.Table.from_pandas(mixtures[columns], preserve_index=False)  # as load_manifest reads it
    return manifest, mixtures, table


def row_loop(sources: pd.DataFrame, mixtures: pd.DataFrame, vocabulary: set) -> None:
    """The same checks, one row at a time."""
    by_id = sources.to_dict("index")
    for row in mixtures.itertuples(index=False):
        row = row._asdict()
        assert row[S.SAMPLE_RATE] > 0
        for gain in (row[S.CLEAN_GAIN], row[S.NOISE_GAIN]):
            assert math.isfinite(gain) and gain >= 0
        noisy = row[S.NOISE_SOURCE_ID] != ""
        assert not noisy or math.isfinite(row[S.SNR_DB])
        assert row[S.NOISE_CATEGORY] in ("", *S.CATEGORIES)
        assert set(row[S.TAGS]) <= vocabulary
        clean = by_id[row[S.CLEAN_SOURCE_ID]]
        frames = frames_at_rate(clean[S.SOURCE_FRAMES], clean[S.SOURCE_SAMPLE_RATE], row[S.SAMPLE_RATE])
        assert 0 <= row[S.CLEAN_OFFSET] and row[S.CLEAN_OFFSET] + row[S.NUM_FRAMES] <= frames
        if noisy:
            noise = by_id[row[S.NOISE_SOURCE_ID]]
            frames = frames_at_rate(noise[S.SOURCE_FRAMES], noise[S.SOURCE_SAMPLE_RATE], row[S.SAMPLE_RATE])
            wraps = row[S.NOISE_LOOPED] or len(row[S.NOISE_NEXT_IDS]) > 0
            assert 0 <= row[S.NOISE_OFFSET] < frames if wraps else row[S.NOISE_OFFSET] + row[S.NUM_FRAMES] <= frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--loop-sample", type=int, default=20_000, help="rows the plain loop is timed on")
    args = parser.parse_args()
    manifest, mixtures, table = tiled(args.rows)
    sources = manifest.sources.reset_index(drop=True)
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        validate_rows(sources, mixtures, manifest.info, DEMO, table)
        times.append(time.perf_counter() - start)
    sample = mixtures.head(args.loop_sample)
    start = time.perf_counter()
    row_loop(manifest.sources, sample, set(manifest.tags))
    loop = (time.perf_counter() - start) * len(mixtures) / len(sample)
    ours = float(np.median(times))
    print(f"{len(mixtures):,} rows, {len(sources):,} sources; median of {args.repeats}")
    print(f"noisemix.validate_rows      {ours:8.3f} s")
    print(f"plain row loop (scaled)     {loop:8.3f} s   ({loop / ours:.0f}x slower)")


if __name__ == "__main__":
    main()
