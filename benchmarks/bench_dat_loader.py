"""Data pipeline throughput against the model's training throughput.

The loader yields on-the-fly mixed (noisemix ``Mixer``), randomly cropped 59049-sample
inputs of the target domain, with 2 workers; the model is the full CLMR SampleCNN
training on batches of the same size. The loader must never be the bottleneck: the
target is at least 5x the model's rate. Run from the repository root::

    python benchmarks/bench_dat_loader.py [--batch 16] [--batches 40] [--workers 2]

A synthetic manifest (clips three model inputs long, all three noise categories) is
written to a temporary folder; decoding happens once, before timing, as in training.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def loader_rate(manifest, config, cache: Path, batch: int, batches: int, workers: int) -> float:
    from dat.data import prepare_training_data, DomainStream

    data = prepare_training_data(manifest, config, cache, progress=False)
    stream = DomainStream(data.target, batch, 0, workers)
    next(stream)  # worker start-up is paid once per run, not per batch
    start = time.perf_counter()
    for _ in range(batches):
        next(stream)
    return batches * batch / (time.perf_counter() - start)


def model_rate(config, batch: int, steps: int) -> float:
    import torch

    from dat.losses import tag_loss
    from dat.models import LabelPredictor, SampleCNN, Tagger
    from dat.train import apply_step

    model = Tagger(SampleCNN(config.model), LabelPredictor(config.model.embedding_dim, 3, 0, 0.5)).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    x, y = torch.randn(batch, config.model.input_length), torch.ones(batch, 3)
    apply_step(tag_loss(model(x), y), [opt], [], scaler)
    start = time.perf_counter()
    for _ in range(steps):
        apply_step(tag_loss(model(x), y), [opt], [], scaler)
    return steps * batch / (time.perf_counter() - start)


def main() -> None:
    from dat.config import config_from_dict
    from noisemix.testing import write_synthetic_manifest
    from noisemix import load_manifest

    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--model-steps", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        manifest = load_manifest(write_synthetic_manifest(tmp / "m", tmp / "audio", segment=3 * 59049,
                                                          clips={"train": 16, "valid": 2, "test": 0}))
        config = config_from_dict({"preset": "full"})
        clips_loader = loader_rate(manifest, config, tmp / "cache", args.batch, args.batches, args.workers)
        clips_model = model_rate(config, args.batch, args.model_steps)
    print(f"loader ({args.workers} workers, mixed + cropped 59049-sample inputs): {clips_loader:.1f} clips/s")
    print(f"full SampleCNN training (batch {args.batch}):                         {clips_model:.2f} clips/s")
    print(f"ratio loader / model: {clips_loader / clips_model:.1f}x (target >= 5x)")


if __name__ == "__main__":
    main()
