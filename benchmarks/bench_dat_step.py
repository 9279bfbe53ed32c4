"""Training-step throughput: dat's SampleCNN step against a straightforward PyTorch loop.

Both train the full CLMR SampleCNN (59049 samples) plus a linear 50-tag head with Adam
on the same random batch; the two are timed alternately in one process so machine load
hits both alike. Run from the repository root::

    python benchmarks/bench_dat_step.py [--batch 16] [--steps 5] [--rounds 2]
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn


def plain_sample_cnn() -> nn.Module:
    """The textbook SampleCNN, written the obvious way (as in CLMR's sample_cnn.py)."""
    layers = [nn.Sequential(nn.Conv1d(1, 128, 3, stride=3), nn.BatchNorm1d(128), nn.ReLU())]
    chans = [128, 128, 128, 256, 256, 256, 256, 256, 256, 512]
    for a, b in zip(chans[:-1], chans[1:]):
        layers.append(nn.Sequential(nn.Conv1d(a, b, 3, padding=1), nn.BatchNorm1d(b), nn.ReLU(), nn.MaxPool1d(3)))
    layers.append(nn.Sequential(nn.Conv1d(512, 512, 3, padding=1), nn.BatchNorm1d(512), nn.ReLU()))

    class Plain(nn.Module):
        def __init__(self):
            super().__init__()
            self.sequential = nn.Sequential(*layers)
            self.dropout = nn.Dropout(0.5)
            self.fc = nn.Linear(512, 50)

        def forward(self, x):
            return self.fc(self.dropout(self.sequential(x.unsqueeze(1)).flatten(1)))

    return Plain()


def main() -> None:
    from dat.config import preset
    from dat.losses import tag_loss
    from dat.models import LabelPredictor, SampleCNN, Tagger
    from dat.train import apply_step, autocast_factory

    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    torch.manual_seed(0)  # benchmark script: its own process, global seeding is harmless here
    config = preset("full").model
    x = torch.randn(args.batch, config.input_length)
    y = (torch.rand(args.batch, 50) < 0.1).float()

    ours = Tagger(SampleCNN(config), LabelPredictor(config.embedding_dim, 50, 0, 0.5)).train()
    autocast, fp16 = autocast_factory(torch.device("cpu"), "auto")
    scaler = torch.amp.GradScaler("cpu", enabled=fp16)
    opt_ours = torch.optim.Adam(ours.parameters(), lr=1e-4)
    sched = torch.optim.lr_scheduler.LambdaLR(opt_ours, lambda s: 1.0)

    def step_ours():
        with autocast():
            logits = ours(x)
        apply_step(tag_loss(logits, y), [opt_ours], [sched], scaler)

    plain = plain_sample_cnn().train()
    opt_plain = torch.optim.Adam(plain.parameters(), lr=1e-4)
    criterion = nn.BCEWithLogitsLoss()

    def step_plain():
        opt_plain.zero_grad()
        criterion(plain(x), y).backward()
        opt_plain.step()

    times = {"dat": 0.0, "plain": 0.0}
    for fn in (step_ours, step_plain):  # warm-up
        fn()
    for _ in range(args.rounds):
        for name, fn in (("dat", step_ours), ("plain", step_plain)):
            start = time.perf_counter()
            for _ in range(args.steps):
                fn()
            times[name] += time.perf_counter() - start
    n = args.rounds * args.steps * args.batch
    rate = {k: n / v for k, v in times.items()}
    print(f"threads {torch.get_num_threads()}, batch {args.batch}, {args.rounds * args.steps} steps each")
    print(f"dat SampleCNN step:   {rate['dat']:.2f} clips/s")
    print(f"plain PyTorch loop:   {rate['plain']:.2f} clips/s")
    print(f"ratio dat / plain:    {rate['dat'] / rate['plain']:.3f}")


if __name__ == "__main__":
    main()
