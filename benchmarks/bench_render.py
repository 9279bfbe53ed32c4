"""Render throughput: noisemix vs audiomentations AddBackgroundNoise vs a plain numpy loop.

Same files (10 s, 22.05 kHz mono WAV clips and 10 s noise WAVs), same SNR range, 16-bit
WAV output, one run. Prints wall and CPU ms per clip and ratios. CPU time (this process
plus its worker processes) is what the ratios use: on a shared machine it is far less
disturbed by other jobs than wall time.

    python benchmarks/bench_render.py [--clips 120]
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

RATE = 22050


def make_files(folder: Path, clips: int) -> tuple[list[Path], list[Path]]:
    gen = np.random.default_rng(0)
    clean, noise = [], []
    for i in range(clips):
        t = np.arange(10 * RATE) / RATE
        path = folder / "clean" / f"c{i:04d}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, 0.3 * np.sin(2 * np.pi * gen.uniform(100, 1000) * t), RATE, subtype="PCM_16")
        clean.append(path)
    for j in range(max(clips // 4, 6)):
        path = folder / "noise" / "environmental" / f"g{j:03d}" / "n.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, 0.2 * gen.standard_normal(10 * RATE).clip(-4, 4) / 4, RATE, subtype="PCM_16")
        noise.append(path)
    return clean, noise


class Timer:
    """Wall and CPU seconds (own + finished child processes) of a block."""

    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), _cpu()
        return self

    def __exit__(self, *exc):
        self.wall, self.cpu = time.perf_counter() - self.wall, _cpu() - self.cpu


def _cpu() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def plain_numpy(clean, noise, out: Path) -> Timer:
    gen = np.random.default_rng(1)
    out.mkdir(parents=True, exist_ok=True)
    with Timer() as timer:
        for i, path in enumerate(clean):
            c, _ = sf.read(path, dtype="float32")
            n, _ = sf.read(noise[i % len(noise)], dtype="float32")
            snr = gen.uniform(-5, 20)
            gain = np.sqrt(np.mean(c**2) / (np.mean(n**2) * 10 ** (snr / 10)))
            mix = c + gain * n[: c.size]
            mix /= max(1.0, np.max(np.abs(mix)) / 0.999)
            sf.write(out / f"{i}.wav", mix, RATE, subtype="PCM_16")
    return timer


def audiomentations_loop(clean, noise, out: Path) -> Timer:
    from audiomentations import AddBackgroundNoise

    transform = AddBackgroundNoise(sounds_path=[str(p) for p in noise], min_snr_db=-5, max_snr_db=20, p=1.0)
    out.mkdir(parents=True, exist_ok=True)
    with Timer() as timer:
        for i, path in enumerate(clean):
            c, _ = sf.read(path, dtype="float32")
            sf.write(out / f"{i}.wav", transform(c, RATE), RATE, subtype="PCM_16")
    return timer


def noisemix_render(folder: Path, workers: int, out: Path) -> Timer:
    from noisemix.build import build_manifest
    from noisemix.render import render_manifest
    from noisemix.sources import CorpusInput
    from noisemix.spec import BuildSpec

    manifest = folder / "manifest"
    if not manifest.exists():
        inputs = [CorpusInput("clean", folder / "clean", "clean"), CorpusInput("noise", folder / "noise", "noise")]
        build_manifest(inputs, BuildSpec(segment_frames=None, clean_references=False,
                                         split_fractions=(1.0, 0.0, 0.0)), manifest, progress=False)
    with Timer() as timer:
        render_manifest(manifest, out, fmt="wav", workers=workers, loudness=False, progress=False)
    return timer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=120)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        os.environ.setdefault("NOISEMIX_CACHE", str(folder / "cache"))
        clean, noise = make_files(folder, args.clips)
        audiomentations_loop(clean[:5], noise, folder / "warm")  # warm caches and imports
        results = {
            "plain numpy loop": plain_numpy(clean, noise, folder / "plain"),
            "audiomentations AddBackgroundNoise": audiomentations_loop(clean, noise, folder / "am"),
            "noisemix render --workers 1": noisemix_render(folder, 1, folder / "nm1"),
            "noisemix render --workers 2": noisemix_render(folder, 2, folder / "nm2"),
        }
    print(f"{args.clips} clips of 10 s, 22.05 kHz mono, 16-bit WAV out (noisemix: decoded-source cache cold,")
    print("sha256 + measured SNR + peak of every file, journal; loudness off)")
    print(f"  {'':38s} {'wall ms/clip':>12s} {'CPU ms/clip':>12s}")
    for name, timer in results.items():
        print(f"  {name:38s} {1000 * timer.wall / args.clips:12.2f} {1000 * timer.cpu / args.clips:12.2f}")
    cpu = {name: timer.cpu for name, timer in results.items()}
    ours = cpu["noisemix render --workers 1"]
    print(f"CPU time, audiomentations / noisemix (1 worker): {cpu['audiomentations AddBackgroundNoise'] / ours:.2f}x")
    print(f"CPU time, noisemix (1 worker) / plain numpy:     {ours / cpu['plain numpy loop']:.2f}x")
    walls = {name: timer.wall for name, timer in results.items()}
    print(f"wall-time speed-up, 2 workers vs 1:              "
          f"{walls['noisemix render --workers 1'] / walls['noisemix render --workers 2']:.2f}x (on {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
