"""Does a CPU preset converge? Stage 1 (FE + LP on clean music) to its early stop, timed.

For each preset x seed it runs ``dat train --stage 1`` on the demo benchmark with the
preset's own budget (step cap, validation interval, patience), then plots validation
PR-AUC against step for every run, marks where early stopping fired, and states the wall
time and the CPU time (user / system) of each run. A run that stops at its step cap
instead of by patience has not converged, and the summary says so.

    python benchmarks/cpu_convergence.py --root demo=$HOME/.cache/noisemix/demo-corpus \
        [--presets cpu cpu-samplecnn] [--seeds 0 1] [--out out/convergence] \
        [--plot benchmarks/results/cpu-convergence.png]

Re-running skips finished runs (their timings are kept in ``OUT/timings.json``).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]


def _train(preset: str, seed: int, run: Path, args) -> dict:
    """One stage-1 run in a child process: wall, user and system seconds."""
    command = [str(Path(sys.executable).with_name("dat")), "train", "-m", str(args.manifest), "--out", str(run),
               "--method", "source-only", "--preset", preset, "--seed", str(seed), "--stage", "1",
               "--set", "train.progress=false"] + [f"--root={r}" for r in args.root]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(command, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"wall_s": time.perf_counter() - started, "user_s": after.ru_utime - before.ru_utime,
            "system_s": after.ru_stime - before.ru_stime}


def _summary(preset: str, seed: int, run: Path, timing: dict) -> dict:
    config = json.loads((run / "config.json").read_text())
    valid = pd.read_csv(run / "valid.csv")
    selection = json.loads((run / "selection.json").read_text())
    cap = config["train"]["stage1"]["steps"]
    last = int(valid["step"].max())
    return {"preset": preset, "seed": seed, "run": str(run), "step_cap": cap, "last_step": last,
            "stopped_by_patience": last < cap, "patience": config["train"]["patience"],
            "eval_every": config["train"]["eval_every"], "batch_size": config["data"]["batch_size"],
            "best_step": selection["chosen"]["step"], "best_clean_pr_auc": selection["chosen"]["score"],
            "valid_clean_clips": int(valid["clean_clips"].iloc[0]), **timing,
            "kernel_share_of_user": timing["system_s"] / max(timing["user_s"], 1e-9)}


def _plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for r in results:
        valid = pd.read_csv(Path(r["run"]) / "valid.csv")
        stop = "early stop" if r["stopped_by_patience"] else "STEP CAP (not converged)"
        line, = ax.plot(valid["step"], valid["clean_pr_auc"], marker=".", linewidth=1,
                        label=f"{r['preset']} seed {r['seed']}: {stop} at {r['last_step']}, "
                              f"{r['wall_s'] / 60:.1f} min wall")
        ax.scatter([r["best_step"]], [r["best_clean_pr_auc"]], s=70, facecolors="none", edgecolors=line.get_color())
    ax.set_xlabel("stage-1 step")
    ax.set_ylabel("valid clean macro PR-AUC")
    clips = results[0]["valid_clean_clips"]
    ax.set_title(f"stage 1 on manifests/demo ({clips} clean valid clips), 2-core CPU; circle: chosen checkpoint",
                 fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, format="png", dpi=100)
    tmp.replace(path)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--manifest", type=Path, default=REPO / "manifests" / "demo")
    parser.add_argument("--root", action="append", default=[], help="NAME=PATH of the manifest's corpus")
    parser.add_argument("--presets", nargs="+", default=["cpu"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--out", type=Path, default=REPO / "out" / "convergence")
    parser.add_argument("--plot", type=Path, default=REPO / "benchmarks" / "results" / "cpu-convergence.png")
    args = parser.parse_args()
    timings_path = args.out / "timings.json"
    timings = json.loads(timings_path.read_text()) if timings_path.is_file() else {}
    results = []
    for preset in args.presets:
        for seed in args.seeds:
            key, run = f"{preset}-seed{seed}", args.out / f"{preset}-seed{seed}"
            if key not in timings or not (run / "selection.json").is_file():
                if run.exists():
                    subprocess.run(["rm", "-rf", str(run)], check=True)  # a half run: its timing would be wrong
                timings[key] = _train(preset, seed, run, args)
                args.out.mkdir(parents=True, exist_ok=True)
                timings_path.write_text(json.dumps(timings, indent=1))
            results.append(_summary(preset, seed, run, timings[key]))
    _plot(results, args.plot)
    summary = {"machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, "
                          f"{len(__import__('os').sched_getaffinity(0))} cores", "runs": results}
    args.plot.with_suffix(".json").write_text(json.dumps(summary, indent=1))
    print(f"{'preset':<15}{'seed':>5}{'stop':>8}{'cap':>6}{'best':>8}{'wall min':>10}{'user s':>9}{'sys s':>8}")
    for r in results:
        print(f"{r['preset']:<15}{r['seed']:>5}{r['last_step']:>8}{r['step_cap']:>6}{r['best_clean_pr_auc']:>8.3f}"
              f"{r['wall_s'] / 60:>10.1f}{r['user_s']:>9.1f}{r['system_s']:>8.1f}"
              + ("" if r["stopped_by_patience"] else "  (step cap: not converged)"))
    print(f"plot: {args.plot}; summary: {args.plot.with_suffix('.json')}")


if __name__ == "__main__":
    main()
