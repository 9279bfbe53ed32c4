"""CSV export of a 200,000-row manifest (noisemix.export.csv.csv_text), beside the row loop it
replaced and beside pandas' own dump of the mixtures table (what a user would otherwise run,
without paths, seconds or exact gains).

The committed demo manifest's rows are tiled to the requested size (fresh mixture ids, same
sources).

    python benchmarks/bench_export.py [--rows 200000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import math
import time
from pathlib import Path

import pandas as pd

from noisemix import load_manifest
from noisemix import schema as S
from noisemix.export.csv import CSV_COLUMNS, csv_text

DEMO = Path(__file__).resolve().parents[1] / "manifests" / "demo"


def tiled(rows: int):
    manifest = load_manifest(DEMO)
    mixtures = pd.concat([manifest.mixtures] * math.ceil(rows / len(manifest.mixtures)), ignore_index=True).head(rows)
    mixtures[S.MIXTURE_ID] = [f"m{i:08d}" for i in range(rows)]
    return dataclasses.replace(manifest, mixtures=mixtures)


def row_loop(manifest) -> str:
    """The same columns written one row at a time with the csv module (the previous exporter)."""
    buffer, rate, sources = io.StringIO(), manifest.sample_rate, manifest.sources
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for m in manifest.mixtures.to_dict("records"):
        noisy = m[S.NOISE_SOURCE_ID] != ""
        clean, noise = sources.loc[m[S.CLEAN_SOURCE_ID]], sources.loc[m[S.NOISE_SOURCE_ID]] if noisy else None
        writer.writerow([
            m[S.MIXTURE_ID], m[S.SPLIT], m[S.SAMPLE_RATE], m[S.NUM_FRAMES], clean[S.ROOT], clean[S.PATH],
            str(manifest.source_path(m[S.CLEAN_SOURCE_ID])), m[S.CLEAN_OFFSET], repr(m[S.CLEAN_OFFSET] / rate),
            repr(float(m[S.CLEAN_GAIN])), noise[S.ROOT] if noisy else "", noise[S.PATH] if noisy else "",
            str(manifest.source_path(m[S.NOISE_SOURCE_ID])) if noisy else "", m[S.NOISE_OFFSET] if noisy else "",
            repr(m[S.NOISE_OFFSET] / rate) if noisy else "", str(bool(m[S.NOISE_LOOPED])).lower() if noisy else "",
            repr(float(m[S.NOISE_GAIN])), repr(float(m[S.SNR_DB])) if S.snr_is_defined(m[S.SNR_DB]) else "",
            m[S.NOISE_CATEGORY], m[S.NOISE_SUBCATEGORY], ";".join(m[S.TAGS]), m[S.NOISE_TRANSFORMS],
            m[S.MIXTURE_TRANSFORMS],
            ";".join(f"{sources.loc[i, S.ROOT]}/{sources.loc[i, S.PATH]}" for i in m[S.NOISE_NEXT_IDS]),
        ])
    return buffer.getvalue()


def best_of(repeats: int, function, *args) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function(*args)
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    manifest = tiled(args.rows)
    ours, text = best_of(args.repeats, csv_text, manifest)
    loop, expected = best_of(1, row_loop, manifest)
    dump, _ = best_of(args.repeats, lambda: manifest.mixtures.to_csv(index=False))
    same = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False).equals(
        pd.read_csv(io.StringIO(expected), dtype=str, keep_default_na=False))
    print(f"{args.rows:,} rows: csv_text {ours:.2f} s; row loop {loop:.2f} s ({loop / ours:.1f}x slower; same "
          f"values: {same}); pandas to_csv of the bare table {dump:.2f} s ({dump / ours:.2f}x)")


if __name__ == "__main__":
    main()
