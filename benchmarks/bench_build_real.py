"""Build time on a real corpus layout: the demo corpus's files on disk, the caches warm.

``bench_build.py`` times the planning on synthetic metadata; this one runs ``noisemix
build`` as a user does, on the demo corpus (888 clips of real music, 2,555 noise
recordings of every length, at 8 to 48 kHz): scanning the files against the scan cache,
reading the energy indexes, drawing, and measuring every noise segment the index cannot
answer (crossfaded loops of short recordings, unaligned crops). That last part is what
was slow: 98% of a 200k-row build, when each segment was materialised and summed.

Side by side, in the same run: the per-row way (materialise the looped or cropped noise
segment, sum its squares), as noisemix did before and as a hand-written pipeline does,
timed on a sample of the same rows and scaled to all of them.

    python benchmarks/bench_build_real.py [--mixtures-per-segment 225] [--repeats 3] [--sample 2000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


COMMAND = ["build", "--snr", "-5:20", "--segment", "full", "--no-progress"]


def build_seconds(out: Path, mixtures_per_segment: int) -> float:
    """Wall time of one ``noisemix build`` in a fresh process, Python start-up included."""
    command = [sys.executable, "-m", "noisemix", *COMMAND, "--mixtures-per-segment", str(mixtures_per_segment),
               "--out", str(out)]
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, env={**os.environ, "NOISEMIX_DEFAULT_CORPUS": "demo"})
    return time.perf_counter() - start


def per_row_seconds(manifest_dir: Path, sample: int) -> tuple[float, int]:
    """Seconds per row of the per-row way, and how many rows of the manifest need it."""
    from noisemix import Mixer, dsp, load_manifest
    from noisemix import schema as S

    from noisemix.energy import block_size_for

    manifest = load_manifest(manifest_dir)
    rows = manifest.mixtures[manifest.mixtures[S.NOISE_CATEGORY] != ""]
    block = block_size_for(manifest.info["spec"]["segment_frames"])  # the build's energy-index block
    mixer = Mixer(manifest)
    # What the index answers (SourceIndex.power): a crop starting and ending on a block boundary
    # or at the recording's end, in samples at the manifest's rate (the decoded length).
    length = {sid: mixer.source(sid).size for sid in rows[S.NOISE_SOURCE_ID].unique()}
    start = rows[S.NOISE_OFFSET].to_numpy()
    end = start + rows[S.NUM_FRAMES].to_numpy()
    aligned = (start % block == 0) & ((end % block == 0) | (end == rows[S.NOISE_SOURCE_ID].map(length).to_numpy()))
    unindexed = rows[rows[S.NOISE_LOOPED].to_numpy() | ~aligned]
    picked = unindexed.sample(min(sample, len(unindexed)), random_state=0)
    start = time.perf_counter()
    for _, row in picked.iterrows():
        dsp.power(mixer.noise(row))
    return (time.perf_counter() - start) / len(picked), len(unindexed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mixtures-per-segment", type=int, default=225)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sample", type=int, default=2000, help="rows timed the per-row way")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        warm = build_seconds(Path(tmp) / "warm-up", args.mixtures_per_segment)  # fills the scan and index caches
        times = [build_seconds(Path(tmp) / f"run-{i}", args.mixtures_per_segment) for i in range(args.repeats)]
        from noisemix import load_manifest

        manifest = load_manifest(Path(tmp) / "run-0")
        per_row, unindexed = per_row_seconds(Path(tmp) / "run-0", args.sample)
    rows, sources = len(manifest.mixtures), len(manifest.sources)
    median = statistics.median(times)
    print(f"noisemix build on the demo corpus: {rows:,} mixtures over {sources:,} sources, "
          f"--segment full --mixtures-per-segment {args.mixtures_per_segment}, on {os.cpu_count()} cores")
    print(f"  first build (caches as found): {warm:6.2f} s")
    print(f"  warm caches, {args.repeats} fresh processes: median {median:.2f} s "
          f"[{min(times):.2f}-{max(times):.2f}], {rows / median:,.0f} mixtures/s")
    print(f"  the per-row way: {1e3 * per_row:.2f} ms per segment x {unindexed:,} loops and unaligned crops "
          f"= {per_row * unindexed:.0f} s for this build's noise powers alone "
          f"({per_row * unindexed / median:.0f}x the whole build; timed on {min(args.sample, unindexed):,} of them)")


if __name__ == "__main__":
    main()
