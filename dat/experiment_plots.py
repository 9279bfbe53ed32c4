"""Plots of an experiment: AUC vs SNR with confidence bands, stage-3 validation curves, DC accuracy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["plot_experiment"]

CURVE_ARMS = ("dat", "dat-no-dc-pretrain")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_auc_vs_snr(result: dict, path: Path) -> bool:
    """ROC-AUC vs SNR per arm with 95% bands; not written (False) when no SNR cell has a score."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    drawn = False
    for arm, by_condition in result["absolute"].items():
        levels = sorted((float(c.split()[1]), c) for c in by_condition if c.startswith("snr ")
                        and "roc_auc" in by_condition[c])
        if not levels:
            continue
        x = [v for v, _ in levels]
        cells = [by_condition[c]["roc_auc"] for _, c in levels]
        y = [100 * c["value"] for c in cells]
        line, = ax.plot(x, y, marker="o", label=arm)
        drawn = True
        ax.fill_between(x, [100 * c["low"] for c in cells], [100 * c["high"] for c in cells], alpha=0.15,
                        color=line.get_color())
        clean = by_condition.get("clean", {}).get("roc_auc")
        if clean:
            right = max(x) + 5
            ax.errorbar([right], [100 * clean["value"]], yerr=[[100 * (clean["value"] - clean["low"])],
                        [100 * (clean["high"] - clean["value"])]], marker="s", color=line.get_color(), capsize=3)
    ticks = sorted({float(c.split()[1]) for a in result["absolute"].values() for c in a if c.startswith("snr ")})
    if ticks:
        ax.set_xticks(ticks + [max(ticks) + 5], [f"{t:g}" for t in ticks] + ["clean"])
    ax.set_xlabel("SNR (dB)")
    ax.set_ylabel("macro ROC-AUC (x100), 95% CI")
    ax.set_title(f"Test ROC-AUC vs SNR (mean over seeds {result['seeds']})")
    ax.grid(alpha=0.3)
    if drawn:
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(path, dpi=120)
    plt.close(fig)
    return drawn


def plot_stage3_curves(runs: dict, path: Path) -> bool:
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharex=True)
    drawn = False
    for arm in CURVE_ARMS:
        if arm not in runs:
            continue
        valid = read_logs(runs[arm], "valid.csv")
        valid = valid[valid["stage"] == 3]
        for ax, column in zip(axes, ("clean_roc_auc", "noisy_roc_auc")):
            mean = valid.groupby("step")[column].mean()
            line, = ax.plot(mean.index, 100 * mean.to_numpy(), marker="o", label=f"{arm} (mean)")
            for _, one in valid.groupby(["seed", "fold"]):
                ax.plot(one["step"], 100 * one[column], color=line.get_color(), alpha=0.3, lw=0.8)
            drawn = True
    for ax, title in zip(axes, ("clean validation", "noisy validation (reported only)")):
        ax.set_title(f"stage 3: {title}")
        ax.set_xlabel("stage-3 step (0: stage 1's best model)")
        ax.set_ylabel("macro ROC-AUC (x100)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    if drawn:
        fig.savefig(path, dpi=120)
    plt.close(fig)
    return drawn


def plot_dc_accuracy(runs: dict, path: Path) -> bool:
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(CURVE_ARMS), figsize=(10, 3.8), sharey=True)
    drawn = False
    for ax, arm in zip(np.atleast_1d(axes), CURVE_ARMS):
        if arm not in runs:
            continue
        log = read_logs(runs[arm], "log.csv")
        log = log[log["stage"].isin([2, 3])].copy()
        stage2 = log[log["stage"] == 2]["step"].max() if (log["stage"] == 2).any() else 0
        log["x"] = np.where(log["stage"] == 3, log["step"] + stage2, log["step"])
        mean = log.groupby("x")[["dc_acc_source", "dc_acc_target", "lambda"]].mean()
        ax.plot(mean.index, mean["dc_acc_source"], label="DC accuracy, source (clean)")
        ax.plot(mean.index, mean["dc_acc_target"], label="DC accuracy, target (noisy)")
        ax.plot(mean.index, mean["lambda"], "k--", lw=1, label="λ (GRL coefficient)")
        if stage2:
            ax.axvline(stage2, color="grey", lw=0.8)
            ax.text(stage2, 0.02, " stage 3 →", fontsize=8)
        ax.axhline(0.5, color="grey", lw=0.5, ls=":")
        ax.set_title(arm)
        ax.set_xlabel("step (stage 2 then stage 3)" if stage2 else "stage-3 step")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        drawn = True
    fig.tight_layout()
    if drawn:
        fig.savefig(path, dpi=120)
    plt.close(fig)
    return drawn


def plot_experiment(result: dict, runs: dict, out: Path) -> list[str]:
    """Write the experiment's plots; return the names of those with nothing to draw (not written)."""
    out = Path(out)
    plots = {"auc_vs_snr.png": lambda path: plot_auc_vs_snr(result, path),
             "stage3_curves.png": lambda path: plot_stage3_curves(runs, path),
             "dc_accuracy.png": lambda path: plot_dc_accuracy(runs, path)}
    return [name for name, plot in plots.items() if not plot(out / name)]


def read_logs(runs: dict[int, list[Path]], name: str) -> pd.DataFrame:
    """One arm's ``log.csv`` or ``valid.csv`` of every seed (and fold), with seed and fold columns."""
    frames = [pd.read_csv(run / name).assign(seed=seed, fold=fold) for seed, folds in runs.items()
              for fold, run in enumerate(folds) if (run / name).is_file()]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
