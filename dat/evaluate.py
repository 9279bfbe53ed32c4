"""Robustness evaluation of trained runs on a manifest's test split.

Clip predictions are sigmoid outputs averaged over non-overlapping model inputs (see
:mod:`dat.predict`). Scores (sklearn macro ROC-AUC and PR-AUC, :mod:`dat.metrics`) are
reported on clean test clips, on all noisy test clips, per SNR level, per noise category
and per (category, SNR) cell, plus per tag. Outputs of one run (in ``RUN/eval`` unless
told otherwise): ``metrics.json``, ``per_tag.csv``, ``table.md``, ``auc_vs_snr.png``.
SNR levels are scored one by one on grid manifests and in 5 dB bins on random-SNR ones.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from noisemix import schema as S, snr_group_label, snr_groups

from . import checkpoint
from .data import ChunkDataset, check_manifest, labelled_rows, make_audio, multi_hot
from .errors import DatError
from .metrics import macro_scores, per_tag_scores
from .models import Tagger
from .predict import predict_clips

__all__ = ["evaluate_run", "write_run_reports", "comparison_table", "conditions_table",
           "mean_over_seeds", "read_metrics", "plot_auc_vs_snr", "run_label", "score_cell"]


# A group of fewer clips gets no score: its AUC would be noise (tables say "n/a (k clips)").
MIN_CLIPS = 30


def _scores(labels, probs, mask) -> dict:
    scores = macro_scores(labels[mask], probs[mask])
    if scores["clips"] < MIN_CLIPS:
        scores.update(roc_auc=float("nan"), pr_auc=float("nan"), too_few_clips=True)
    return scores


def group_metrics(rows: pd.DataFrame, labels: np.ndarray, probs: np.ndarray) -> dict:
    """Macro scores on clean clips, noisy clips, per SNR, per category and per (category, SNR)."""
    clean = rows[S.NOISE_SOURCE_ID].map(S.is_clean_reference).to_numpy(dtype=bool)
    snr = np.full(len(rows), "", dtype=object)
    snr[~clean], bin_db = snr_groups(rows[S.SNR_DB].to_numpy(dtype=np.float64)[~clean])
    category = rows[S.NOISE_CATEGORY].to_numpy()
    out = {"all": _scores(labels, probs, np.ones(len(rows), bool)), "snr_bin_db": bin_db}
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
    if metrics.get("seeds"):
        return f"{metrics['method']} (mean of seeds {', '.join(map(str, metrics['seeds']))})"
    return f"{metrics['method']} (seed {metrics['seed']})"


CHECKPOINTS = {"best": "best.pt", "last": "last.pt"}  # --checkpoint: the selected model, or training's end


def evaluate_run(run_dir: Path, manifest, split: str = "test", batch_size: int = 32, num_workers: int = 2,
                 cache_dir: Path | None = None, progress: bool = True, which: str = "best",
                 predictions_cache: Path | None = None) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    """``(metrics, per-tag table, clip predictions)`` of a run's ``best.pt`` (or, ``which="last"``,
    of the model as training left it) on ``split`` of ``manifest``. With ``predictions_cache``,
    a model already scored on the same rows (e.g. the stage-1 model that several runs selected)
    is not scored again: its predictions are kept there under a key of its weights and the rows."""
    from .config import RunConfig
    from .memory import keep_freed_memory

    keep_freed_memory()
    run_dir = Path(run_dir)
    if which not in CHECKPOINTS:
        raise DatError(f"--checkpoint {which!r}: choose {' or '.join(CHECKPOINTS)}")
    path = run_dir / CHECKPOINTS[which]
    nets, state = checkpoint.load_model(path)
    config = RunConfig(model=checkpoint.model_config_of(state))
    tags = check_manifest(manifest, config)
    checkpoint.check_tags(state["tags"], tags, str(path))
    rows = labelled_rows(manifest, split)
    cached = Path(predictions_cache) / f"{prediction_key(state, manifest, rows)}.npy" if predictions_cache else None
    if cached is not None and cached.is_file():
        probs = np.load(cached)
        print(f"note: predictions of the same model on the same rows reused from {cached}", file=sys.stderr)
    else:
        audio = make_audio(manifest, config, cache_dir)
        dataset = ChunkDataset(rows, audio, config.model.input_length)
        if dataset.short:
            print(f"note: {dataset.short} {split} clip(s) are shorter than one model input "
                  f"({config.model.input_length} samples) and are zero-padded", file=sys.stderr)
        probs = predict_clips(Tagger(nets.fe, nets.lp), dataset, batch_size, num_workers, progress=progress)
        if cached is not None:
            _save_array(probs, cached)
    labels = multi_hot(list(rows[S.TAGS]), tags, f"{split} rows")
    metrics = {"run": str(run_dir), "method": state["method"], "seed": state["seed"], "split": split,
               "manifest": str(manifest.directory),
               "manifest_fingerprints": manifest.fingerprints,
               "checkpoint": which,
               "selected_at": {"stage": state["stage"], "step": state["step"], "valid_pr_auc": state["valid_pr_auc"],
                               "rule": state.get("selected_by", "")},
               "num_tags": len(tags), "min_clips": MIN_CLIPS, **group_metrics(rows, labels, probs)}
    groups = rows[S.CLEAN_SOURCE_ID].map(manifest.sources[S.GROUP])
    return metrics, per_tag_table(tags, rows, labels, probs), prediction_table(tags, rows, labels, probs, groups)


def prediction_key(state: dict, manifest, rows: pd.DataFrame) -> str:
    """What a clip prediction depends on: the tagger's weights (FE and LP, the DC plays no
    part), its architecture and tags, the manifest's fingerprints and the scored rows."""
    import hashlib

    digest = hashlib.sha256()
    for part in ("fe", "lp"):
        for name, tensor in sorted(state[part].items()):
            array = tensor.detach().cpu().contiguous().numpy()
            digest.update(f"{part}.{name}:{array.dtype}:{array.shape}".encode())
            digest.update(array.tobytes())
    digest.update(json.dumps([state["model_config"], state["tags"], manifest.fingerprints],
                             sort_keys=True, default=str).encode())
    digest.update("\n".join(rows[S.MIXTURE_ID].astype(str)).encode())
    return digest.hexdigest()[:32]


def _save_array(array: np.ndarray, path: Path) -> None:
    from .io import atomic_path

    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.save(handle, array)


PREDICTIONS_FILE = "predictions.parquet"
CLEAN_GROUP = "clean_group"  # the clean clip's group (piece / album): the unit a bootstrap resamples


def prediction_table(tags: list[str], rows: pd.DataFrame, labels: np.ndarray, probs: np.ndarray,
                     groups: pd.Series | None = None) -> pd.DataFrame:
    """One row per clip: its ids, split, condition, the targets (``y:TAG``) and the scores (``p:TAG``)."""
    table = rows[[S.MIXTURE_ID, S.SPLIT, S.CLEAN_SOURCE_ID, S.NOISE_CATEGORY, S.SNR_DB]].reset_index(drop=True)
    table.insert(3, CLEAN_GROUP, rows[S.CLEAN_SOURCE_ID].to_numpy() if groups is None else groups.to_numpy())
    targets = pd.DataFrame(labels.astype(np.int8), columns=[f"y:{t}" for t in tags])
    scores = pd.DataFrame(probs.astype(np.float32), columns=[f"p:{t}" for t in tags])
    return pd.concat([table, targets, scores], axis=1)


def read_predictions(run_dir: Path, name: str = "eval") -> pd.DataFrame:
    path = Path(run_dir) / name / PREDICTIONS_FILE
    if not path.is_file():
        raise DatError(f"{path}: not found; run `dat evaluate {run_dir} --manifest M --name {name}` first")
    return pd.read_parquet(path)


# --- reports ----------------------------------------------------------------------

def score_cell(scores: dict | None) -> str:
    """``ROC-AUC / PR-AUC`` in %, or ``n/a (N clips)`` for a condition with too few clips."""
    if scores and scores.get("too_few_clips"):
        return f"n/a ({scores['clips']} clips)"
    if not scores or not np.isfinite(scores["roc_auc"]):
        return "-- / --"
    return f"{100 * scores['roc_auc']:.1f} / {100 * scores['pr_auc']:.1f}"


def _conditions(metrics: dict) -> list[tuple[str, dict | None]]:
    out = [(name, metrics[key]) for name, key in (("clean", "clean"), ("noisy (all)", "noisy")) if metrics.get(key)]
    bin_db = metrics.get("snr_bin_db")
    out += [(f"SNR {snr_group_label(lv, bin_db)} dB", s) for lv, s in metrics["by_snr"].items()]
    out += [(f"{c}", s) for c, s in metrics["by_category"].items()]
    out += [(f"{c} @ {snr_group_label(lv, bin_db)} dB", s)
            for c, d in metrics["by_category_snr"].items() for lv, s in d.items()]
    return out


def comparison_table(all_metrics: list[dict]) -> str:
    """Markdown: one row per condition, one column per run, cells 'ROC-AUC / PR-AUC' in %."""
    return conditions_table([[m] for m in all_metrics], [""])


def conditions_table(columns: list[list[dict]], evals: list[str]) -> str:
    """Markdown table of runs (or seed means), one column each.

    ``columns[j][k]`` holds column ``j``'s metrics from evaluation ``evals[k]``; with
    several evaluations each condition is prefixed by the evaluation's name.
    """
    labels = [run_label(c[0]) for c in columns]
    if len(set(labels)) < len(labels):
        labels = [f"{run_label(c[0])} [{Path(c[0]['run']).name}]" for c in columns]
    lookup = [{f"{name}: {n}" if name else n: s for name, m in zip(evals, c) for n, s in _conditions(m)}
              for c in columns]
    names = list(dict.fromkeys(n for d in lookup for n in d))
    lines = ["| condition | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
    lines += [f"| {n} | " + " | ".join(score_cell(d.get(n)) for d in lookup) + " |" for n in names]
    return "\n".join(lines) + ("\n\nCells: macro ROC-AUC / PR-AUC (%), clip-level, test split; "
                               f"n/a: fewer than {MIN_CLIPS} clips.\n")


def mean_over_seeds(runs: list[dict]) -> list[dict]:
    """One metrics dict per method (in order of first appearance): every score averaged
    over that method's runs. A method with a single run is returned as it is."""
    by_method: dict[str, list[dict]] = {}
    for metrics in runs:
        by_method.setdefault(metrics["method"], []).append(metrics)
    return [group[0] if len(group) == 1 else _mean_metrics(group) for group in by_method.values()]


def _mean_metrics(group: list[dict]) -> dict:
    mean = {**group[0], "seeds": [m["seed"] for m in group], "runs": [m["run"] for m in group]}
    for key in ("all", "clean", "noisy", "by_snr", "by_category", "by_category_snr"):
        if all(key in m for m in group):
            mean[key] = _mean_tree([m[key] for m in group])
    return mean


def _mean_tree(values: list):
    """Element-wise mean of equally shaped nested dicts (keys missing anywhere are dropped)."""
    if all(isinstance(v, dict) for v in values):
        return {k: _mean_tree([v[k] for v in values]) for k in values[0] if all(k in v for v in values)}
    if all(isinstance(v, (int, float)) for v in values):
        return float(np.mean(values))
    return values[0]


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
                xs = [float(lv) + (m.get("snr_bin_db") or 0.0) / 2 for lv in cells]  # bins at their centres
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


def write_run_reports(metrics: dict, per_tag: pd.DataFrame, out_dir: Path,
                      predictions: pd.DataFrame | None = None) -> None:
    from .io import atomic_path, write_json, write_text

    out_dir = Path(out_dir)
    if predictions is not None:
        with atomic_path(out_dir / PREDICTIONS_FILE) as tmp:
            predictions.to_parquet(tmp, index=False)
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


METRICS_KEYS = ("run", "method", "seed", "by_snr", "by_category")  # what compare reads of every result


def read_metrics(run_dir: Path, name: str = "eval") -> dict:
    """A run's ``RUN/NAME/metrics.json`` as written by ``dat evaluate --name NAME``."""
    path = Path(run_dir) / name / "metrics.json"
    if not path.is_file():
        option = "" if name == "eval" else f" --name {name}"
        raise DatError(f"{path}: not found; run `dat evaluate {run_dir} --manifest M{option}` first")
    try:
        metrics = _nan(json.loads(path.read_text()))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatError(f"{path}: not readable as JSON ({exc}); run `dat evaluate {run_dir}` again") from None
    missing = [key for key in METRICS_KEYS if not isinstance(metrics, dict) or key not in metrics]
    if missing:
        raise DatError(f"{path}: not a dat evaluate result (no {', '.join(missing)}); run `dat evaluate {run_dir}` again")
    metrics["snr_bin_db"] = _finite(metrics.get("snr_bin_db"))  # None: SNR levels were not binned
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
