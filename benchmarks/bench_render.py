"""Render throughput: noisemix vs audiomentations AddBackgroundNoise vs a plain numpy loop.

Same files (10 s, 22.05 kHz mono WAV clips and 10 s noise WAVs), same SNR range, 16-bit
WAV output, one run. Prints ms per clip and ratios.

    python benchmarks/bench_render.py [--clips 120]
"""

from __future__ import annotations

import argparse
import os
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


def plain_numpy(clean, noise, out: Path) -> float:
    gen = np.random.default_rng(1)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    for i, path in enumerate(clean):
        c, _ = sf.read(path, dtype="float32")
        n, _ = sf.read(noise[i % len(noise)], dtype="float32")
        snr = gen.uniform(-5, 20)
        gain = np.sqrt(np.mean(c**2) / (np.mean(n**2) * 10 ** (snr / 10)))
        mix = c + gain * n[: c.size]
        mix /= max(1.0, np.max(np.abs(mix)) / 0.999)
        sf.write(out / f"{i}.wav", mix, RATE, subtype="PCM_16")
    return time.perf_counter() - start


def audiomentations_loop(clean, noise, out: Path) -> float:
    from audiomentations import AddBackgroundNoise

    transform = AddBackgroundNoise(sounds_path=[str(p) for p in noise], min_snr_db=-5, max_snr_db=20, p=1.0)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    for i, path in enumerate(clean):
        c, _ = sf.read(path, dtype="float32")
        sf.write(out / f"{i}.wav", transform(c, RATE), RATE, subtype="PCM_16")
    return time.perf_counter() - start


def noisemix_render(folder: Path, workers: int, out: Path) -> float:
    from noisemix.build import build_manifest
    from noisemix.render import render_manifest
    from noisemix.sources import CorpusInput
    from noisemix.spec import BuildSpec

    manifest = folder / "manifest"
    if not manifest.exists():
        inputs = [CorpusInput("clean", folder / "clean", "clean"), CorpusInput("noise", folder / "noise", "noise")]
        build_manifest(inputs, BuildSpec(segment_frames=None, clean_references=False,
                                         split_fractions=(1.0, 0.0, 0.0)), manifest, progress=False)
    start = time.perf_counter()
    render_manifest(manifest, out, fmt="wav", workers=workers, loudness=False, progress=False)
    return time.perf_counter() - start


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
    per_clip = {name: 1000 * seconds / args.clips for name, seconds in results.items()}
    ours, ours2 = per_clip["noisemix render --workers 1"], per_clip["noisemix render --workers 2"]
    print(f"{args.clips} clips of 10 s, 22.05 kHz mono, 16-bit WAV out (decoded-source cache cold)")
    for name, ms in per_clip.items():
        print(f"  {name:38s} {ms:7.2f} ms/clip  {10000 / ms:7.0f}x real time")
    print(f"noisemix (1 worker) vs audiomentations: {per_clip['audiomentations AddBackgroundNoise'] / ours:.2f}x faster")
    print(f"noisemix (1 worker) vs plain numpy:     {ours / per_clip['plain numpy loop']:.2f}x the plain loop's time")
    print(f"2 workers vs 1:                          {ours / ours2:.2f}x speed-up")


if __name__ == "__main__":
    main()
