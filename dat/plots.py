"""Training curves of one run: what shows whether adversarial training is happening.

``training.png`` has three panels over global steps: the losses; the DC's accuracy on
each domain with λ (a DC stuck at 0.5 learns nothing, one at 1.0 is not being fooled);
and validation PR-AUC on clean rows (which select the model) and noisy rows, with the
chosen checkpoint marked. Stage boundaries are drawn as vertical lines.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

__all__ = ["plot_training"]


def _stage_lines(ax, log: pd.DataFrame) -> None:
    for stage, part in log.groupby("stage"):
        ax.axvline(part["global_step"].min(), color="grey", linewidth=0.6, linestyle="--")
        ax.text(part["global_step"].min(), 1.0, f" stage {stage}", transform=ax.get_xaxis_transform(),
                fontsize=7, va="top", color="grey")


def _panel_losses(ax, log: pd.DataFrame) -> None:
    for column in ("loss", "loss_lp", "loss_dc"):
        if column in log and log[column].notna().any():
            ax.plot(log["global_step"], log[column], label=column, linewidth=1)
    ax.set_ylabel("loss")


def _panel_domain(ax, log: pd.DataFrame) -> None:
    for column, label in (("dc_acc_source", "DC accuracy, source"), ("dc_acc_target", "DC accuracy, target")):
        if column in log and log[column].notna().any():
            ax.plot(log["global_step"], log[column], label=label, linewidth=1)
    ax.axhline(0.5, color="black", linewidth=0.5, linestyle=":")
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("DC accuracy")
    if "lambda" in log and log["lambda"].notna().any():
        twin = ax.twinx()
        twin.plot(log["global_step"], log["lambda"], color="tab:red", linewidth=1, label="λ")
        twin.set_ylabel("λ", color="tab:red")


def _panel_validation(ax, valid: pd.DataFrame) -> None:
    for column, label in (("clean_pr_auc", "valid clean PR-AUC (selects)"), ("noisy_pr_auc", "valid noisy PR-AUC")):
        if column in valid and valid[column].notna().any():
            ax.plot(valid["global_step"], valid[column], marker=".", label=label, linewidth=1)
    chosen = valid[valid["best"] == 1].tail(1)
    if len(chosen):
        ax.scatter(chosen["global_step"], chosen["clean_pr_auc"], s=80, facecolors="none", edgecolors="black",
                   label="chosen checkpoint", zorder=3)
    ax.set_ylabel("PR-AUC")
    ax.set_xlabel("global step")


def plot_training(run_dir: Path) -> Path | None:
    """Write ``RUN/training.png`` from its logs; None (and nothing written) without log rows."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .io import atomic_path

    run_dir = Path(run_dir)
    if not (run_dir / "log.csv").is_file():
        return None
    log = pd.read_csv(run_dir / "log.csv")
    valid = pd.read_csv(run_dir / "valid.csv") if (run_dir / "valid.csv").is_file() else pd.DataFrame()
    if log.empty:
        return None
    fig, axes = plt.subplots(3, 1, figsize=(9, 8), sharex=True)
    _panel_losses(axes[0], log)
    _panel_domain(axes[1], log)
    if not valid.empty:
        _panel_validation(axes[2], valid)
    for ax in axes:
        _stage_lines(ax, log)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="lower right")
        ax.grid(alpha=0.3)
    fig.suptitle(f"training of {run_dir.name}")
    fig.tight_layout()
    path = run_dir / "training.png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)
    return path
