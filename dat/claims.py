"""The paper's claims, measured: paired bootstrap differences and pre-registered verdicts.

Input: the per-clip test predictions of every arm x seed of an experiment (each
``RUN/EVAL/predictions.parquet``, all on the same test mixtures) and the stage-3
validation predictions (``RUN/valid_probs``). Output: ``claims.md`` / ``claims.json``
and plots.

Statistics. Every difference is paired: both arms are scored on the same resample of
test pieces (clusters by the clean clip's group, ``clean_group`` of the predictions: every
mixture of every excerpt of one piece moves together)
and of seeds (arms of one seed share their stage 1), 95 % percentile intervals
(:mod:`dat.bootstrap`). A score is the macro ROC-AUC (PR-AUC reported beside it),
averaged over the drawn seeds. Verdicts (``VERDICT_RULES``) are fixed before any result:

* superiority ("A beats B"): supported if the interval lies above 0, refuted if it lies
  below 0, inconclusive otherwise;
* non-inferiority ("without losing clean accuracy"): supported if the interval lies above
  ``-margin``, refuted if it lies below ``-margin``, inconclusive otherwise.

A condition with fewer than ``MIN_CLIPS`` distinct clean clips gets no number.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from noisemix import schema as S

from .bootstrap import cluster_weights, interval, macro_scores_weighted, seed_draws
from .errors import DatError
from .evaluate import CLEAN_GROUP, MIN_CLIPS, read_predictions

__all__ = ["VERDICT_RULES", "EvalPredictions", "Bootstrap", "verdict", "load_test_predictions", "analyse",
           "write_claims"]

VERDICT_RULES = ("superiority: supported if the 95% CI of the difference lies above 0, refuted if it lies below 0, "
                 "else inconclusive; non-inferiority (clean accuracy): supported if the CI lies above -margin, "
                 "refuted if it lies below -margin, else inconclusive")


def verdict(low: float, high: float, kind: str, margin: float = 0.0) -> str:
    if not (np.isfinite(low) and np.isfinite(high)):
        return "n/a"
    bound = -margin if kind == "non-inferiority" else 0.0
    if low > bound:
        return "supported"
    if high < bound:
        return "refuted"
    return "inconclusive"


@dataclass
class EvalPredictions:
    """The shared test rows, their labels and each arm's probabilities ``(seeds, N, T)``."""

    rows: pd.DataFrame
    labels: np.ndarray
    tags: list[str]
    seeds: list[int]
    probs: dict[str, np.ndarray] = field(default_factory=dict)

    def clusters(self) -> np.ndarray:
        """What a resample draws: the clean clip's group (piece) where the predictions have it."""
        column = CLEAN_GROUP if CLEAN_GROUP in self.rows else S.CLEAN_SOURCE_ID
        return self.rows[column].to_numpy()

    def masks(self) -> dict[str, np.ndarray]:
        """Conditions scored: clean, noisy, each SNR level, each category (noisy rows)."""
        clean = self.rows[S.NOISE_CATEGORY].eq("").to_numpy()
        out = {"clean": clean, "noisy": ~clean}
        snr = self.rows[S.SNR_DB].to_numpy(dtype=np.float64)
        for level in sorted(set(np.round(snr[~clean], 1))):
            out[f"snr {level:+g} dB"] = ~clean & (np.round(snr, 1) == level)
        for category in sorted(set(self.rows[S.NOISE_CATEGORY][~clean])):
            out[category] = self.rows[S.NOISE_CATEGORY].eq(category).to_numpy()
        return out


def load_test_predictions(runs: dict[str, dict[int, Path]], eval_name: str) -> EvalPredictions:
    """``runs[arm][seed]`` -> run directory; every run must be evaluated on the same rows."""
    seeds = sorted(set.intersection(*(set(by_seed) for by_seed in runs.values())))
    reference = None
    probs = {}
    for arm, by_seed in runs.items():
        per_seed = []
        for seed in seeds:
            table = read_predictions(by_seed[seed], eval_name)
            tags = [c[2:] for c in table.columns if c.startswith("p:")]
            if reference is None:
                reference, ref_tags = table, tags
            elif tags != ref_tags or not table[S.MIXTURE_ID].equals(reference[S.MIXTURE_ID]):
                raise DatError(f"{by_seed[seed] / eval_name}: predictions of other test rows than the other runs")
            per_seed.append(table[[f"p:{t}" for t in tags]].to_numpy(np.float64))
        probs[arm] = np.stack(per_seed)
    labels = reference[[f"y:{t}" for t in ref_tags]].to_numpy(np.float64)
    columns = [S.MIXTURE_ID, S.CLEAN_SOURCE_ID, S.NOISE_CATEGORY, S.SNR_DB]
    rows = reference[columns + [c for c in (CLEAN_GROUP,) if c in reference]].copy()
    return EvalPredictions(rows, labels, ref_tags, seeds, probs)


class Bootstrap:
    """Shared resamples of clips (by cluster) and seeds; scores cached per (arm, condition)."""

    def __init__(self, clusters: np.ndarray, num_seeds: int, resamples: int, seed: int,
                 clip_ids: np.ndarray | None = None):
        rng = np.random.default_rng(seed)
        self.clusters = np.asarray(clusters)
        self.clip_ids = self.clusters if clip_ids is None else np.asarray(clip_ids)
        self.weights = cluster_weights(self.clusters, resamples, rng)
        self.seed_index = seed_draws(num_seeds, resamples, rng)
        self._cache: dict = {}

    def clips(self, mask: np.ndarray) -> int:
        """Distinct clean clips under ``mask`` (what a cell's size is counted in)."""
        return int(len(np.unique(self.clip_ids[mask])))

    def scores(self, key, probs: np.ndarray, labels: np.ndarray, mask: np.ndarray) -> dict:
        """``{metric: (R + 1,)}``: the arm's score per resample, averaged over the drawn seeds."""
        if key not in self._cache:
            per_seed = [macro_scores_weighted(p[mask], labels[mask], self.weights[:, mask]) for p in probs]
            reps = np.arange(self.seed_index.shape[0])[:, None]
            self._cache[key] = {m: np.stack([s[m] for s in per_seed])[self.seed_index, reps].mean(axis=1)
                                for m in ("roc_auc", "pr_auc")}
        return self._cache[key]


def _difference_row(boot: Bootstrap, test: EvalPredictions, a: str, b: str, condition: str, kind: str,
                    margin: float) -> dict:
    mask = test.masks()[condition]
    clips = boot.clips(mask)
    row = {"a": a, "b": b, "condition": condition, "kind": kind, "clips": clips, "mixtures": int(mask.sum())}
    if clips < MIN_CLIPS:
        return dict(row, verdict=f"n/a ({clips} clips)")
    sa = boot.scores((a, condition), test.probs[a], test.labels, mask)
    sb = boot.scores((b, condition), test.probs[b], test.labels, mask)
    for metric in ("roc_auc", "pr_auc"):
        diff, low, high = interval(sa[metric] - sb[metric])
        row[metric] = {"a": float(sa[metric][0]), "b": float(sb[metric][0]), "diff": diff, "low": low, "high": high}
    row["verdict"] = verdict(row["roc_auc"]["low"], row["roc_auc"]["high"], kind, margin)
    return row


def _headline(rows: list[dict]) -> str:
    """A claim's verdict from its pre-registered rows (the per-SNR / per-category rows are descriptive)."""
    verdicts = [r["verdict"] for r in rows]
    if any(v == "refuted" for v in verdicts):
        return "refuted"
    if any(v.startswith("n/a") for v in verdicts):
        return "n/a (too few clips)"
    if all(v == "supported" for v in verdicts):
        return "supported"
    return "inconclusive"


def analyse(test: EvalPredictions, curves: list[dict] | None, *, resamples: int = 1000, seed: int = 0,
            margin: float = 0.01, arms: dict[str, str] | None = None) -> dict:
    """Every claim's rows and headline verdict; ``arms`` maps roles to arm names."""
    roles = {"dat": "dat", "source": "source-only", "no_pretrain": "dat-no-dc-pretrain",
             "multicondition": "multicondition", "one_category": "dat-1cat", "more_target": "dat-3x", "control": "dat-lambda0",
             "consistency": "consistency"} | (arms or {})
    boot = Bootstrap(test.clusters(), len(test.seeds), resamples, seed, test.rows[S.CLEAN_SOURCE_ID].to_numpy())
    masks = test.masks()
    detail = [c for c in masks if c not in ("clean", "noisy")]

    def rows(a, b, conditions, kind="superiority"):
        have = roles[a] in test.probs and roles[b] in test.probs
        return [_difference_row(boot, test, roles[a], roles[b], c, kind, margin) for c in conditions] if have else []

    claims = {}
    main = rows("dat", "source", ["noisy"]) + rows("dat", "source", ["clean"], "non-inferiority")
    claims["a"] = {"title": "DAT beats source-only on noisy music without losing clean accuracy",
                   "rows": main, "detail": rows("dat", "source", detail)}
    reported = [r for r in curves or [] if r["verdict"].endswith("(reported only)")]
    claims["b"] = {"title": "DC pretraining avoids the early degradation of stage 3",
                   "rows": [r for r in curves or [] if r not in reported],
                   "detail": reported + rows("dat", "no_pretrain", ["noisy", "clean"])}
    claims["c"] = {"title": "More noise variety in the target domain helps (3 categories vs 1, tested on all 3)",
                   "rows": rows("dat", "one_category", ["noisy"]), "detail": rows("dat", "one_category", detail)}
    claims["d"] = {"title": "More unlabelled noisy target data helps (target 3x vs 1x)",
                   "rows": rows("more_target", "dat", ["noisy"]), "detail": rows("more_target", "dat", detail)}
    claims["control"] = {"title": "Control: DAT vs the same run with λ = 0 (stages and steps alike, no reversed "
                                  "gradient): what the adversarial term adds beyond the extra training",
                         "rows": rows("dat", "control", ["noisy"]),
                         "detail": rows("dat", "control", ["clean"], "non-inferiority") + rows("dat", "control", detail)}
    claims["beyond"] = {"title": "Beyond the paper: label-free consistency (noisy crops tagged as the stage-1 model tags "
                                 "their clean music) beats source-only on noisy music",
                        "rows": rows("consistency", "source", ["noisy"]),
                        "detail": rows("consistency", "source", ["clean"], "non-inferiority")
                        + rows("consistency", "dat", ["noisy", "clean"]) + rows("consistency", "source", detail)}
    claims["ref"] = {"title": "Reference: multicondition (labelled noisy rows) vs source-only",
                     "rows": rows("multicondition", "source", ["noisy"]),
                     "detail": rows("multicondition", "source", ["clean"], "non-inferiority")}
    for claim in claims.values():
        claim["verdict"] = _headline(claim["rows"]) if claim["rows"] else "not run"
    absolute = {arm: {c: _absolute(boot, test, arm, c) for c in masks} for arm in test.probs}
    return {"claims": claims, "absolute": absolute, "seeds": test.seeds, "resamples": resamples,
            "margin": margin, "rules": VERDICT_RULES, "min_clips": MIN_CLIPS, "tags": test.tags,
            "test_mixtures": len(test.rows), "test_clips": boot.clips(np.ones(len(test.rows), bool))}


def _absolute(boot: Bootstrap, test: EvalPredictions, arm: str, condition: str) -> dict:
    mask = test.masks()[condition]
    clips = boot.clips(mask)
    if clips < MIN_CLIPS:
        return {"clips": clips}
    scores = boot.scores((arm, condition), test.probs[arm], test.labels, mask)
    return {"clips": clips, **{m: dict(zip(("value", "low", "high"), interval(scores[m]))) for m in scores}}


# --- validation curves (claim b) -------------------------------------------------

def early_change_rows(curves: dict[str, dict[int, dict]], labels: dict[str, np.ndarray],
                      clusters: dict[str, np.ndarray], seeds: list[int], early: int, resamples: int, seed: int,
                      margin: float, a: str = "dat", b: str = "dat-no-dc-pretrain") -> list[dict]:
    """Claim (b): the mean change of validation ROC-AUC over the first ``early`` stage-3
    validations relative to stage 3's start, ``a`` minus ``b`` (positive: ``a`` degrades less).

    ``curves[arm][seed][split]``: ``(V, N, T)`` probabilities of stage 3's validations, the
    first at step 0. Clean validation rows are the pre-registered ones; noisy are reported.
    """
    out = []
    for split in ("clean", "noisy"):
        if split not in labels:
            continue
        boot = Bootstrap(clusters[split], len(seeds), resamples, seed)
        change = {}
        for arm in (a, b):
            per_seed = []
            for s in seeds:
                probs = curves[arm][s][split][: early + 1]
                scores = [macro_scores_weighted(p, labels[split], boot.weights)["roc_auc"] for p in probs]
                per_seed.append(np.mean(scores[1:], axis=0) - scores[0])
            reps = np.arange(boot.seed_index.shape[0])[:, None]
            change[arm] = np.stack(per_seed)[boot.seed_index, reps].mean(axis=1)
        diff, low, high = interval(change[a] - change[b])
        clips = boot.clips(np.ones(len(clusters[split]), bool))
        row = {"a": a, "b": b, "condition": f"valid {split}: mean change over the first {early} stage-3 validations",
               "kind": "superiority", "clips": clips, "mixtures": len(clusters[split]),
               "roc_auc": {"a": float(change[a][0]), "b": float(change[b][0]), "diff": diff, "low": low,
                           "high": high}}
        row["verdict"] = verdict(low, high, "superiority") if clips >= MIN_CLIPS else f"n/a ({clips} clips)"
        if split == "noisy":
            row["verdict"] += " (reported only)"
        out.append(row)
    return out


# --- writing ----------------------------------------------------------------------

def _points(value: float) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{100 * value:+.1f}"


def _row_md(row: dict) -> str:
    if "roc_auc" not in row:
        return f"| {row['a']} − {row['b']} | {row['condition']} | {row['clips']} | n/a | n/a | {row['verdict']} |"
    r, p = row["roc_auc"], row.get("pr_auc")
    pr = f"{_points(p['diff'])} [{_points(p['low'])}, {_points(p['high'])}]" if p else "—"
    return (f"| {row['a']} − {row['b']} | {row['condition']} | {row['clips']} | "
            f"{_points(r['diff'])} [{_points(r['low'])}, {_points(r['high'])}] | {pr} | {row['verdict']} |")


def claims_markdown(result: dict, header: str) -> str:
    lines = [header, "", f"Verdict rules (fixed before the run): {result['rules']}; margin "
             f"{100 * result['margin']:.1f} ROC-AUC points. Differences in ROC-AUC / PR-AUC points (x100), "
             f"paired bootstrap 95% CI over test clips and seeds ({result['resamples']} resamples); "
             f"seeds {result['seeds']}; {result['test_clips']} test clips, {result['test_mixtures']} test mixtures; "
             f"conditions with fewer than {result['min_clips']} clips: n/a.", "",
             "| claim | verdict |", "|---|---|"]
    for key, claim in result["claims"].items():
        lines.append(f"| ({key}) {claim['title']} | **{claim['verdict']}** |")
    table_head = ["| difference | condition | clips | ROC-AUC [95% CI] | PR-AUC [95% CI] | verdict |",
                  "|---|---|---|---|---|---|"]
    for key, claim in result["claims"].items():
        lines += ["", f"## ({key}) {claim['title']}: {claim['verdict']}", ""]
        if claim["rows"]:
            lines += ["Pre-registered rows:", ""] + table_head + [_row_md(r) for r in claim["rows"]]
        if claim.get("detail"):
            lines += ["", "Detail (descriptive; one row per condition):", ""] + table_head
            lines += [_row_md(r) for r in claim["detail"]]
    lines += ["", "## Scores per arm (mean over seeds, ROC-AUC x100 [95% CI])", ""]
    conditions = list(next(iter(result["absolute"].values())))
    lines += ["| arm | " + " | ".join(conditions) + " |", "|---" * (len(conditions) + 1) + "|"]
    for arm, by_condition in result["absolute"].items():
        cells = []
        for c in conditions:
            cell = by_condition[c]
            cells.append(f"n/a ({cell['clips']} clips)" if "roc_auc" not in cell else
                         f"{100 * cell['roc_auc']['value']:.1f} [{100 * cell['roc_auc']['low']:.1f}, "
                         f"{100 * cell['roc_auc']['high']:.1f}]")
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_claims(result: dict, out_dir: Path, header: str, stem: str = "claims") -> None:
    from .io import write_json, write_text

    out_dir = Path(out_dir)
    write_json(result, out_dir / f"{stem}.json")
    write_text(claims_markdown(result, header), out_dir / f"{stem}.md")
