"""CPU training throughput: the page-fault fix and the log-mel front end, against a plain PyTorch loop.

For each feature extractor (the ``cpu`` preset's log-mel CNN, the ``cpu-samplecnn`` preset
and the full CLMR SampleCNN) it measures training clips/s of

* ``plain``: a straightforward PyTorch loop on the same model and batch (``zero_grad``,
  ``backward``, ``step``) with glibc's default allocator settings: what a user would write;
* ``dat, default malloc``: dat's training step (AdamW, gradient clipping, the trainer's
  ``apply_step``) without :func:`dat.memory.keep_freed_memory`: the trainer before the fix;
* ``dat``: the same with the fix, as ``dat train`` runs.

Every measurement runs in a fresh process (the allocator setting is process-wide and
one-way), one torch thread unless told otherwise, and reports the user and system CPU
seconds per step and the minor page faults per step. Run from the repository root::

    python benchmarks/bench_dat_step.py [--steps 20] [--threads 1] [--batch 32]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

PRESETS = ("cpu", "cpu-samplecnn", "full")
MODES = ("plain", "dat-default-malloc", "dat")


def _child(preset_name: str, mode: str, steps: int, batch: int, threads: int) -> dict:
    import torch

    from dat.config import preset
    from dat.losses import tag_loss
    from dat.memory import keep_freed_memory
    from dat.models import Nets, Tagger
    from dat.train import apply_step

    if mode == "dat":
        keep_freed_memory()
    torch.set_num_threads(threads)
    torch.manual_seed(0)  # benchmark process of its own: global seeding is harmless here
    config = preset(preset_name)
    nets = Nets(config.model, 50, 2)
    model = Tagger(nets.fe, nets.lp).train()
    x = torch.randn(batch, config.model.input_length)
    y = (torch.rand(batch, 50) < 0.1).float()
    if mode == "plain":
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)

        def step():
            opt.zero_grad()
            loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x), y)
            loss.backward()
            opt.step()
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
        scaler = torch.amp.GradScaler("cpu", enabled=False)

        def step():
            apply_step(tag_loss(model(x), y), [opt], [], scaler, clip_norm=5.0)

    for _ in range(2):
        step()  # warm-up: allocator pools, kernels
    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    for _ in range(steps):
        step()
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    return {"clips_per_s": steps * batch / seconds, "faults_per_step": (after.ru_minflt - before.ru_minflt) / steps,
            "user_s_per_step": (after.ru_utime - before.ru_utime) / steps,
            "system_s_per_step": (after.ru_stime - before.ru_stime) / steps}


def _measure(preset_name: str, mode: str, args) -> dict:
    steps = args.steps if preset_name == "cpu" else max(3, args.steps // (4 if preset_name == "cpu-samplecnn" else 10))
    out = subprocess.run([sys.executable, __file__, "--child", preset_name, mode, "--steps", str(steps),
                          "--batch", str(args.batch), "--threads", str(args.threads)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--presets", nargs="+", default=list(PRESETS), choices=PRESETS)
    parser.add_argument("--child", nargs=2, metavar=("PRESET", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(*args.child, args.steps, args.batch, args.threads)))
        return
    print(f"training clips/s, batch {args.batch}, {args.threads} torch thread(s), each in a fresh process; "
          "user / system CPU seconds and minor page faults per step")
    print(f"{'preset':<15}{'mode':<22}{'clips/s':>9}{'user s':>9}{'sys s':>9}{'faults':>10}")
    results = {}
    for name in args.presets:
        row = {mode: _measure(name, mode, args) for mode in MODES}
        results[name] = row
        for mode in MODES:
            r = row[mode]
            print(f"{name:<15}{mode:<22}{r['clips_per_s']:>9.1f}{r['user_s_per_step']:>9.3f}"
                  f"{r['system_s_per_step']:>9.3f}{r['faults_per_step']:>10.0f}")
        ratio = row["dat"]["clips_per_s"] / row["plain"]["clips_per_s"]
        fix = row["dat"]["clips_per_s"] / row["dat-default-malloc"]["clips_per_s"]
        print(f"{name:<15}dat / plain loop {ratio:.2f}x, allocator fix {fix:.2f}x")
    if "cpu" in results and "cpu-samplecnn" in results:
        speedup = results["cpu"]["dat"]["clips_per_s"] / results["cpu-samplecnn"]["dat"]["clips_per_s"]
        print(f"log-mel cpu preset vs SampleCNN cpu-samplecnn preset (both with the fix): {speedup:.1f}x clips/s")


if __name__ == "__main__":
    main()
