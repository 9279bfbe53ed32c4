"""Robustness evaluation of trained runs on a manifest's test split.

Clip predictions are sigmoid outputs averaged over non-overlapping model inputs (see
:mod:`dat.predict`). Scores (sklearn macro ROC-AUC and PR-AUC, :mod:`dat.metrics`) are
reported on clean test clips, on all noisy test clips, per SNR level, per noise category
and per (category, SNR) cell, plus per tag. Outputs of one run (in ``RUN/eval`` unless
told otherwise): ``metrics.json``, ``per_tag.csv``, ``table.md``, ``auc_vs_snr.png``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from noisemix import schema as S

from . import checkpoint
from .data import ChunkDataset, check_manifest, labelled_rows, make_audio, multi_hot
from .errors import DatError
from .metrics import macro_scores, per_tag_scores
from .models import Tagger
from .predict import predict_clips

__all__ = ["evaluate_run", "snr_key", "write_run_reports", "comparison_table", "plot_auc_vs_snr", "run_label"]


def snr_key(snr_db: float) -> str:
    """Group key of an SNR level (0.1 dB resolution, so '5.0' and '4.99999' meet)."""
    return f"{round(float(snr_db), 1):.1f}"


def _scores(labels, probs, mask) -> dict:
    return macro_scores(labels[mask], probs[mask])


def group_metrics(rows: pd.DataFrame, labels: np.ndarray, probs: np.ndarray) -> dict:
    """Macro scores on clean clips, noisy clips, per SNR, per category and per (category, SNR)."""
    clean = rows[S.NOISE_SOURCE_ID].map(S.is_clean_reference).to_numpy(dtype=bool)
    snr = rows[S.SNR_DB].map(lambda v: snr_key(v) if S.snr_is_defined(v) else "").to_numpy()
    category = rows[S.NOISE_CATEGORY].to_numpy()
    out = {"all": _scores(labels, probs, np.ones(len(rows), bool))}
    if clean.any():
        out["clean"] = _scores(labels, probs, clean)
    if (~clean).any():
        out["noisy"] = _scores(labels, probs, ~clean)
    levels = sorted({s for s in snr[~clean]}, key=float)
    cats = sorted(set(category[~clean]))
    out["by_snr"] = {lv: _scores(labels, probs, ~clean & (snr == lv)) for lv in levels}
    out["by_category"] = {c: _scores(labels, probs, ~clean & (category == c)) for c in cats}
    out["by_category_snr"] = {
        c: {lv: _scores(labels, probs, ~clean & (category == c) & (snr == lv))
            for lv in levels if (~clean & (category == c) & (snr == lv)).any()}
        for c in cats
    }
    return out


def per_tag_table(tags, rows, labels, probs) -> pd.DataFrame:
    clean = rows[S.NOISE_SOURCE_ID].map(S.is_clean_reference).to_numpy(dtype=bool)
    table = pd.DataFrame({"tag": tags})
    for name, mask in (("clean", clean), ("noisy", ~clean)):
        if mask.any():
            roc, pr = per_tag_scores(labels[mask], probs[mask])
            table[f"positives_{name}"] = labels[mask].sum(0).astype(int)
            table[f"roc_auc_{name}"], table[f"pr_auc_{name}"] = roc, pr
    return table


def run_label(metrics: dict) -> str:
    return f"{metrics['method']} (seed {metrics['seed']})"


def evaluate_run(run_dir: Path, manifest, split: str = "test", batch_size: int = 32, num_workers: int = 2,
                 cache_dir: Path | None = None, progress: bool = True) -> tuple[dict, pd.DataFrame]:
    """``(metrics, per-tag table)`` of a run's ``best.pt`` on ``split`` of ``manifest``."""
    from .config import config_from_dict

    run_dir = Path(run_dir)
    nets, state = checkpoint.load_model(run_dir / "best.pt")
    config = config_from_dict({"model": state["model_config"]})
    tags = check_manifest(manifest, config)
    checkpoint.check_tags(state["tags"], tags, str(run_dir / "best.pt"))
    rows = labelled_rows(manifest, split)
    audio = make_audio(manifest, config, Path(cache_dir) if cache_dir else run_dir / "cache")
    dataset = ChunkDataset(rows, audio, config.model.input_length)
    if dataset.short:
        print(f"note: {dataset.short} {split} clip(s) are shorter than one model input "
              f"({config.model.input_length} samples) and are zero-padded", file=sys.stderr)
    probs = predict_clips(Tagger(nets.fe, nets.lp), dataset, batch_size, num_workers, progress=progress)
    labels = multi_hot(list(rows[S.TAGS]), tags, f"{split} rows")
    metrics = {"run": str(run_dir), "method": state["method"], "seed": state["seed"], "split": split,
               "manifest": str(manifest.directory), "selected_at": {"stage": state["stage"], "step": state["step"],
                                                                    "valid_pr_auc": state["valid_pr_auc"]},
               "num_tags": len(tags), **group_metrics(rows, labels, probs)}
    return metrics, per_tag_table(tags, rows, labels, probs)


# --- reports ----------------------------------------------------------------------

def _cell(scores: dict | None) -> str:
    if not scores or not np.isfinite(scores["roc_auc"]):
        return "-- / --"
    return f"{100 * scores['roc_auc']:.1f} / {100 * scores['pr_auc']:.1f}"


def _conditions(metrics: dict) -> list[tuple[str, dict | None]]:
    out = [("clean", metrics.get("clean")), ("noisy (all)", metrics.get("noisy"))]
    out += [(f"SNR {lv} dB", s) for lv, s in metrics["by_snr"].items()]
    out += [(f"{c}", s) for c, s in metrics["by_category"].items()]
    out += [(f"{c} @ {lv} dB", s) for c, d in metrics["by_category_snr"].items() for lv, s in d.items()]
    return out


def comparison_table(all_metrics: list[dict]) -> str:
    """Markdown: one row per condition, one column per run, cells 'ROC-AUC / PR-AUC' in %."""
    labels = [run_label(m) for m in all_metrics]
    if len(set(labels)) < len(labels):
        labels = [f"{run_label(m)} [{Path(m['run']).name}]" for m in all_metrics]
    names = []
    for m in all_metrics:
        names += [n for n, _ in _conditions(m) if n not in names]
    lookup = [dict(_conditions(m)) for m in all_metrics]
    lines = ["| condition | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
    lines += [f"| {n} | " + " | ".join(_cell(d.get(n)) for d in lookup) + " |" for n in names]
    return "\n".join(lines) + "\n\nCells: macro ROC-AUC / PR-AUC (%), clip-level, test split.\n"


def plot_auc_vs_snr(all_metrics: list[dict], path: Path) -> None:
    """ROC-AUC and PR-AUC against SNR, one panel per noise category, one line per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from .io import atomic_path

    cats = sorted({c for m in all_metrics for c in m["by_category_snr"]}) or ["(none)"]
    fig, axes = plt.subplots(2, len(cats), figsize=(4 * len(cats), 6), squeeze=False, sharey="row")
    for j, cat in enumerate(cats):
        for i, key in enumerate(("roc_auc", "pr_auc")):
            ax = axes[i][j]
            for m in all_metrics:
                cells = m["by_category_snr"].get(cat, {})
                xs = [float(lv) for lv in cells]
                line = ax.plot(xs, [cells[lv][key] for lv in cells], marker="o", label=run_label(m))[0]
                if m.get("clean"):
                    ax.axhline(m["clean"][key], color=line.get_color(), linestyle=":", linewidth=1)
            ax.set_title(f"{cat}: {'ROC-AUC' if key == 'roc_auc' else 'PR-AUC'}")
            ax.set_xlabel("SNR (dB)")
            ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle("Tagging AUC against SNR (dotted: clean clips)")
    fig.tight_layout()
    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def write_run_reports(metrics: dict, per_tag: pd.DataFrame, out_dir: Path) -> None:
    from .io import atomic_path, write_json, write_text

    out_dir = Path(out_dir)
    write_json(_finite(metrics), out_dir / "metrics.json")
    with atomic_path(out_dir / "per_tag.csv") as tmp:
        per_tag.to_csv(tmp, index=False, float_format="%.6f")
    write_text(comparison_table([metrics]), out_dir / "table.md")
    plot_auc_vs_snr([metrics], out_dir / "auc_vs_snr.png")


def _finite(value):
    """JSON has no NaN: unscorable values become null."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def read_metrics(run_dir: Path) -> dict:
    path = Path(run_dir) / "eval" / "metrics.json"
    if not path.is_file():
        raise DatError(f"{path}: not found; run `dat evaluate {run_dir} --manifest M` first")
    metrics = _nan(json.loads(path.read_text()))
    # JSON objects come back in text order (-5, 0, 10, 15, 20, 5); tables and plots need numbers.
    metrics["by_snr"] = _by_level(metrics.get("by_snr", {}))
    metrics["by_category_snr"] = {c: _by_level(d) for c, d in metrics.get("by_category_snr", {}).items()}
    return metrics


def _by_level(scores: dict) -> dict:
    return dict(sorted(scores.items(), key=lambda item: float(item[0])))


def _nan(value):
    if isinstance(value, dict):
        return {k: _nan(v) for k, v in value.items()}
    return float("nan") if value is None else value
