"""Render throughput: noisemix vs audiomentations AddBackgroundNoise vs a plain numpy loop.

Same files (10 s, 22.05 kHz mono WAV clips; 10 s noise WAVs at ``--noise-rate``), same
SNR range, 16-bit WAV output, one run. Every measurement runs in a fresh Python process
(imports and set-up not timed), the methods take turns, and each is repeated
``--repeats`` times; the median is reported. CPU time (the process plus its render
workers) is what the per-core ratios use; wall time gives the worker speed-up, next to
the plain loop's own speed-up in two processes (what the machine allows for this work).

With ``--noise-rate 16000`` (MUSAN's rate) every method must resample the noise to
22.05 kHz: audiomentations and the plain loop do it per mixture, noisemix once per file.
It also prints two per-clip costs the README quotes: decoding a 16-bit clip through
libsndfile's float conversion against noisemix's integer read, and BS.1770 loudness
(``render --loudness``, off in the runs above).

    python benchmarks/bench_render.py [--clips 1000] [--repeats 3] [--noise-rate 22050]

``--curve 50,200,1000,2000`` prints the scaling curve instead: for each number of clips,
``noisemix render`` with one and two workers next to the plain loop in one and two
processes (the machine's own scaling for this work), wall time, median and range of the
repeats.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import soundfile as sf

RATE = 22050
CLIP_S = 10
METHODS = {
    "plain": "plain numpy loop",
    "audiomentations": "audiomentations AddBackgroundNoise",
    "noisemix-1": "noisemix render --workers 1",
    "noisemix-2": "noisemix render --workers 2",
    "plain-2": "plain numpy loop, 2 processes",
}


def make_files(folder: Path, clips: int, noise_rate: int) -> None:
    gen = np.random.default_rng(0)
    t = np.arange(CLIP_S * RATE) / RATE
    for i in range(clips):
        path = folder / "clean" / f"c{i:04d}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, 0.3 * np.sin(2 * np.pi * gen.uniform(100, 1000) * t), RATE, subtype="PCM_16")
    for j in range(max(clips // 4, 6)):
        path = folder / "noise" / "environmental" / f"g{j:03d}" / "n.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, 0.2 * gen.standard_normal(CLIP_S * noise_rate).clip(-4, 4) / 4, noise_rate, subtype="PCM_16")


def clean_files(folder: Path) -> list[Path]:
    return sorted((folder / "clean").glob("*.wav"))


def noise_files(folder: Path) -> list[Path]:
    return sorted((folder / "noise").rglob("*.wav"))


def plain_numpy(folder: Path, out: Path, part: int = 0, parts: int = 1) -> None:
    """What a user writes by hand: read, resample if needed, scale to the SNR, guard, write."""
    import soxr

    gen = np.random.default_rng(1 + part)
    noise = noise_files(folder)
    for i, path in list(enumerate(clean_files(folder)))[part::parts]:
        c, _ = sf.read(path, dtype="float32")
        n, rate = sf.read(noise[i % len(noise)], dtype="float32")
        if rate != RATE:
            n = soxr.resample(n, rate, RATE)
        n = n[: c.size]
        snr = gen.uniform(-5, 20)
        gain = np.sqrt(np.mean(c**2) / (np.mean(n**2) * 10 ** (snr / 10)))
        mix = c + gain * n
        mix /= max(1.0, np.max(np.abs(mix)) / 0.999)
        sf.write(out / f"{i}.wav", mix, RATE, subtype="PCM_16")


def audiomentations_loop(folder: Path, out: Path) -> None:
    from audiomentations import AddBackgroundNoise

    warnings.simplefilter("ignore")  # its "had to be resampled" warning, once per mixture
    transform = AddBackgroundNoise(sounds_path=[str(p) for p in noise_files(folder)],
                                   min_snr_db=-5, max_snr_db=20, p=1.0)
    for i, path in enumerate(clean_files(folder)):
        c, _ = sf.read(path, dtype="float32")
        sf.write(out / f"{i}.wav", transform(c, RATE), RATE, subtype="PCM_16")


def noisemix_render(folder: Path, out: Path, workers: int) -> None:
    from noisemix.render import render_manifest

    render_manifest(folder / "manifest", out, fmt="wav", workers=workers, loudness=False, progress=False)


def rerun_seconds(folder: Path, out: Path) -> float:
    """A second ``noisemix render`` into a complete, current folder: every row's key is checked
    against its journal record; nothing is decoded or written."""
    noisemix_render(folder, out, 1)
    start = time.perf_counter()
    noisemix_render(folder, out, 1)
    return time.perf_counter() - start


def build_noisemix_manifest(folder: Path) -> None:
    from noisemix.build import build_manifest
    from noisemix.sources import CorpusInput
    from noisemix.spec import BuildSpec

    inputs = [CorpusInput("clean", folder / "clean", "clean"), CorpusInput("noise", folder / "noise", "noise")]
    build_manifest(inputs, BuildSpec(segment_frames=None, clean_references=False, split_fractions=(1.0, 0.0, 0.0)),
                   folder / "manifest", progress=False)


def measure(method: str, folder: Path, out: Path) -> dict:
    """Run one method in this (fresh) process; wall and CPU seconds, workers included."""
    import noisemix.render  # noqa: F401  (imports are not what is measured)
    import audiomentations  # noqa: F401
    import soxr  # noqa: F401

    out.mkdir(parents=True)
    run = {
        "plain": lambda: plain_numpy(folder, out),
        "audiomentations": lambda: audiomentations_loop(folder, out),
        "noisemix-1": lambda: noisemix_render(folder, out, 1),
        "noisemix-2": lambda: noisemix_render(folder, out, 2),
        "plain-2": lambda: _in_two_processes(plain_numpy, folder, out),
    }[method]
    wall, cpu = time.perf_counter(), _cpu()
    run()
    return {"wall": time.perf_counter() - wall, "cpu": _cpu() - cpu}


def _in_two_processes(loop, folder: Path, out: Path) -> None:
    """The machine's own scaling for this work: the loop's halves side by side."""
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(2) as pool:
        list(pool.map(loop, [folder] * 2, [out] * 2, [0, 1], [2, 2]))


def _cpu() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def component_costs(folder: Path, count: int = 100) -> dict:
    """Per-clip costs the README quotes: decoding a 16-bit clip two ways, and loudness."""
    from noisemix.audio import decode
    from noisemix.dsp import loudness_lufs

    clips = clean_files(folder)[:count]
    costs = {}
    for name, read in (("libsndfile float32", lambda p: sf.read(p, dtype="float32", always_2d=True)),
                       ("noisemix decode", decode)):
        read(clips[0])
        start = time.perf_counter()
        for path in clips:
            read(path)
        costs[name] = (time.perf_counter() - start) / len(clips)
    audio, _ = sf.read(clips[0], dtype="float32")
    loudness_lufs(audio, RATE)
    start = time.perf_counter()
    for _ in range(20):
        loudness_lufs(audio, RATE)
    costs["loudness"] = (time.perf_counter() - start) / 20
    return costs


def run_in_fresh_process(method: str, folder: Path, out: Path) -> dict:
    command = [sys.executable, __file__, "--measure", method, "--folder", str(folder), "--out", str(out)]
    env = {**os.environ, "NOISEMIX_CACHE": str(out) + "-cache"}  # decoded-source cache cold for every run
    os.sync()  # the files earlier runs wrote reach the disk now, not while this run is timed
    result = subprocess.run(command, check=True, capture_output=True, text=True, env=env)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--noise-rate", type=int, default=RATE, help="sample rate of the noise files (Hz)")
    parser.add_argument("--curve", help="comma-separated clip counts: print the workers scaling curve")
    parser.add_argument("--rerun-only", action="store_true", help="only time a re-run on a complete, current folder")
    parser.add_argument("--measure", choices=METHODS, help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.folder, args.out)))
        return
    if args.curve:
        scaling_curve(sorted(int(n) for n in args.curve.split(",")), args.repeats, args.noise_rate)
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        os.environ["NOISEMIX_CACHE"] = str(folder / "build-cache")
        make_files(folder, args.clips, args.noise_rate)
        build_noisemix_manifest(folder)
        rerun = rerun_seconds(folder, folder / "rerun")
        print(f"re-running noisemix render on a complete, current folder of {args.clips} renders: {rerun:.2f} s "
              f"(render keys checked, nothing decoded or written)")
        if args.rerun_only:
            return
        costs = component_costs(folder)
        runs: dict[str, list[dict]] = {method: [] for method in METHODS}
        for repeat in range(args.repeats):
            for method in METHODS:
                runs[method].append(run_in_fresh_process(method, folder, folder / f"{method}-{repeat}"))
    report(runs, costs, args)


CURVE_METHODS = ("noisemix-1", "noisemix-2", "plain", "plain-2")


def scaling_curve(sizes: list[int], repeats: int, noise_rate: int) -> None:
    """Wall time of one and two processes per number of clips, for noisemix and the plain loop."""
    print(f"workers scaling on {os.cpu_count()} cores: {CLIP_S} s clips, 16-bit WAV out, wall ms per clip, "
          f"median [min-max] of {repeats} fresh-process runs")
    print(f"  {'clips':>6s} {'noisemix 1 worker':>22s} {'2 workers':>22s} {'speed-up':>9s} "
          f"{'plain loop 1 process':>22s} {'2 processes':>22s} {'speed-up':>9s}")
    with tempfile.TemporaryDirectory() as tmp:
        for clips in sizes:
            folder = Path(tmp) / f"clips-{clips}"
            os.environ["NOISEMIX_CACHE"] = str(folder / "build-cache")
            make_files(folder, clips, noise_rate)
            build_noisemix_manifest(folder)
            walls = {method: [] for method in CURVE_METHODS}
            for repeat in range(repeats):
                for method in CURVE_METHODS:
                    walls[method].append(run_in_fresh_process(method, folder, folder / f"{method}-{repeat}")["wall"])
            cells = {m: _median_range(1000 * np.array(w) / clips) for m, w in walls.items()}
            median = {m: statistics.median(w) for m, w in walls.items()}
            print(f"  {clips:6d} {cells['noisemix-1']:>22s} {cells['noisemix-2']:>22s} "
                  f"{median['noisemix-1'] / median['noisemix-2']:8.2f}x {cells['plain']:>22s} {cells['plain-2']:>22s} "
                  f"{median['plain'] / median['plain-2']:8.2f}x", flush=True)
            shutil.rmtree(folder)


def _median_range(values) -> str:
    return f"{statistics.median(values):.2f} [{min(values):.2f}-{max(values):.2f}]"


def report(runs: dict[str, list[dict]], costs: dict, args) -> None:
    wall = {m: statistics.median(r["wall"] for r in rs) for m, rs in runs.items()}
    cpu = {m: statistics.median(r["cpu"] for r in rs) for m, rs in runs.items()}
    print(f"{args.clips} clips of {CLIP_S} s, 22.05 kHz mono, noise at {args.noise_rate} Hz, 16-bit WAV out; "
          f"median of {args.repeats} fresh-process runs")
    print("(noisemix: decoded-source cache cold, sha256 + measured SNR + peak of every file, journal; loudness off)")
    print(f"  {'':38s} {'wall ms/clip, median [range]':>30s} {'CPU ms/clip, median [range]':>30s}")
    for method, name in METHODS.items():
        cells = [_median_range([1000 * r[kind] / args.clips for r in runs[method]]) for kind in ("wall", "cpu")]
        print(f"  {name:38s} {cells[0]:>30s} {cells[1]:>30s}")
    print(f"CPU time, audiomentations / noisemix (1 worker): {cpu['audiomentations'] / cpu['noisemix-1']:.2f}x")
    print(f"CPU time, noisemix (1 worker) / plain numpy:     {cpu['noisemix-1'] / cpu['plain']:.2f}x")
    print(f"wall-time speed-up, 2 workers vs 1:              {wall['noisemix-1'] / wall['noisemix-2']:.2f}x "
          f"(on {os.cpu_count()} cores; the plain loop in 2 processes: {wall['plain'] / wall['plain-2']:.2f}x)")
    print(f"throughput (wall), noisemix 2 workers / audiomentations: {wall['audiomentations'] / wall['noisemix-2']:.2f}x "
          f"(audiomentations has no parallel mode)")
    print(f"decoding one clip: libsndfile to float32 {1000 * costs['libsndfile float32']:.2f} ms, "
          f"noisemix (integers, scaled) {1000 * costs['noisemix decode']:.2f} ms")
    print(f"BS.1770 loudness (pyloudnorm) of one clip, per written file with --loudness: "
          f"{1000 * costs['loudness']:.2f} ms")


if __name__ == "__main__":
    main()
