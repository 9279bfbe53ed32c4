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

Folds (a ``noisemix build --folds K`` benchmark, one model per fold and seed): *pooled*
scores rank the test clips of all folds together, each scored by its own fold's model;
*fold-averaged* scores are the mean over folds of each fold's score (so one fold's
calibration never ranks against another's), and a cell needs ``MIN_CLIPS`` clips in every
fold. Either way a resample draws pieces within each fold.
"""

from __future__ import annotations

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


PAPER_CLAIMS = ("a", "b", "c", "d")  # listed even when not run; the other comparisons only where their arms ran


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
    folds: np.ndarray | None = None  # each row's test fold (a folded benchmark), else None

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


FOLD = "fold"  # the test fold of a prediction row (its model's fold)


def _fold_table(runs: list[Path], eval_name: str) -> pd.DataFrame:
    """The predictions of one arm and seed: of each fold's run on its test fold, in fold order."""
    return pd.concat([read_predictions(run, eval_name).assign(**{FOLD: k}) for k, run in enumerate(runs)],
                     ignore_index=True)


def load_test_predictions(runs: dict[str, dict[int, list[Path]]], eval_name: str) -> EvalPredictions:
    """``runs[arm][seed]`` -> the run directory of each fold (one without folds); every arm
    and seed must be evaluated on the same rows."""
    seeds = sorted(set.intersection(*(set(by_seed) for by_seed in runs.values())))
    reference = None
    probs = {}
    for arm, by_seed in runs.items():
        per_seed = []
        for seed in seeds:
            table = _fold_table(by_seed[seed], eval_name)
            tags = [c[2:] for c in table.columns if c.startswith("p:")]
            if reference is None:
                reference, ref_tags = table, tags
            elif tags != ref_tags or not table[S.MIXTURE_ID].equals(reference[S.MIXTURE_ID]):
                raise DatError(f"{by_seed[seed][0] / eval_name}: predictions of other test rows than the other runs")
            per_seed.append(table[[f"p:{t}" for t in tags]].to_numpy(np.float64))
        probs[arm] = np.stack(per_seed)
    labels = reference[[f"y:{t}" for t in ref_tags]].to_numpy(np.float64)
    columns = [S.MIXTURE_ID, S.CLEAN_SOURCE_ID, S.NOISE_CATEGORY, S.SNR_DB]
    rows = reference[columns + [c for c in (CLEAN_GROUP,) if c in reference]].copy()
    folds = reference[FOLD].to_numpy() if reference[FOLD].nunique() > 1 else None
    return EvalPredictions(rows, labels, ref_tags, seeds, probs, folds)


class Bootstrap:
    """Shared resamples of clips (by cluster) and seeds; scores cached per (arm, condition)."""

    def __init__(self, clusters: np.ndarray, num_seeds: int, resamples: int, seed: int,
                 clip_ids: np.ndarray | None = None, folds: np.ndarray | None = None, fold_average: bool = False):
        rng = np.random.default_rng(seed)
        self.clusters = np.asarray(clusters)
        self.clip_ids = self.clusters if clip_ids is None else np.asarray(clip_ids)
        self.folds = None if folds is None else np.asarray(folds)
        self.fold_average = fold_average and self.folds is not None
        self.weights = cluster_weights(self.clusters, resamples, rng, self.folds)
        self.seed_index = seed_draws(num_seeds, resamples, rng)
        self._cache: dict = {}

    def clips(self, mask: np.ndarray) -> int:
        """Distinct clean clips under ``mask`` (what a cell's size is counted in)."""
        return int(len(np.unique(self.clip_ids[mask])))

    def too_few(self, mask: np.ndarray) -> str | None:
        """``n/a (N clips)`` where the cell is too small to score (fold-averaged: in some fold)."""
        if not self.fold_average:
            clips = self.clips(mask)
            return f"n/a ({clips} clips)" if clips < MIN_CLIPS else None
        clips = min(self.clips(mask & (self.folds == k)) for k in np.unique(self.folds))
        return f"n/a ({clips} clips in a fold)" if clips < MIN_CLIPS else None

    def macro(self, probs: np.ndarray, labels: np.ndarray, mask: np.ndarray) -> dict:
        """One model's ``{metric: (R + 1,)}`` under ``mask``: over the rows, or the mean over folds."""
        if not self.fold_average:
            return macro_scores_weighted(probs[mask], labels[mask], self.weights[:, mask])
        parts = [macro_scores_weighted(probs[m], labels[m], self.weights[:, m])
                 for m in (mask & (self.folds == k) for k in np.unique(self.folds))]
        return {metric: np.mean([part[metric] for part in parts], axis=0) for metric in ("roc_auc", "pr_auc")}

    def scores(self, key, probs: np.ndarray, labels: np.ndarray, mask: np.ndarray) -> dict:
        """``{metric: (R + 1,)}``: the arm's score per resample, averaged over the drawn seeds."""
        if key not in self._cache:
            per_seed = [self.macro(p, labels, mask) for p in probs]
            reps = np.arange(self.seed_index.shape[0])[:, None]
            self._cache[key] = {m: np.stack([s[m] for s in per_seed])[self.seed_index, reps].mean(axis=1)
                                for m in ("roc_auc", "pr_auc")}
        return self._cache[key]


def _difference_row(boot: Bootstrap, test: EvalPredictions, a: str, b: str, condition: str, kind: str,
                    margin: float) -> dict:
    mask = test.masks()[condition]
    row = {"a": a, "b": b, "condition": condition, "kind": kind, "clips": boot.clips(mask),
           "mixtures": int(mask.sum())}
    if boot.too_few(mask):
        return dict(row, verdict=boot.too_few(mask))
    sa = boot.scores((a, condition), test.probs[a], test.labels, mask)
    sb = boot.scores((b, condition), test.probs[b], test.labels, mask)
    for metric in ("roc_auc", "pr_auc"):
        diff, low, high = interval(sa[metric] - sb[metric])
        row[metric] = {"a": float(sa[metric][0]), "b": float(sb[metric][0]), "diff": diff, "low": low, "high": high}
    row["verdict"] = verdict(row["roc_auc"]["low"], row["roc_auc"]["high"], kind, margin)
    return row


def _fraction_row(boot: Bootstrap, test: EvalPredictions, a: str, base: str, ref: str, condition: str) -> dict:
    """The share of ``ref``'s gain over ``base`` that ``a`` reaches: ``(a - base) / (ref - base)``
    per resample (paired), shown only where ``ref``'s own gain is clearly above zero (else
    the ratio divides by noise)."""
    mask = test.masks()[condition]
    row = {"a": a, "b": base, "reference": ref, "condition": condition, "kind": "fraction",
           "clips": boot.clips(mask), "mixtures": int(mask.sum())}
    if boot.too_few(mask):
        return dict(row, verdict=boot.too_few(mask))
    sa, sb, sr = (boot.scores((arm, condition), test.probs[arm], test.labels, mask)["roc_auc"] for arm in (a, base, ref))
    _, gain_low, _ = interval(sr - sb)
    if not gain_low > 0:
        return dict(row, verdict=f"n/a ({ref}'s gain is not above 0 here)")
    with np.errstate(divide="ignore", invalid="ignore"):
        share, low, high = interval((sa - sb) / (sr - sb))
    return dict(row, roc_auc={"diff": share, "low": low, "high": high}, verdict="reported only")


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
            margin: float = 0.01, arms: dict[str, str] | None = None, fold_average: bool = False) -> dict:
    """Every claim's rows and headline verdict; ``arms`` maps roles to arm names. On a folded
    test, scores are pooled over folds or, with ``fold_average``, averaged over them."""
    roles = {"dat": "dat", "source": "source-only", "no_pretrain": "dat-no-dc-pretrain",
             "multicondition": "multicondition", "one_category": "dat-1cat", "more_target": "dat-3x", "control": "dat-lambda0",
             "consistency": "consistency", "consistency_unlabelled": "consistency-unlabelled"} | (arms or {})
    boot = Bootstrap(test.clusters(), len(test.seeds), resamples, seed, test.rows[S.CLEAN_SOURCE_ID].to_numpy(),
                     test.folds, fold_average)
    masks = test.masks()
    detail = [c for c in masks if c not in ("clean", "noisy")]

    def rows(a, b, conditions, kind="superiority"):
        have = roles[a] in test.probs and roles[b] in test.probs
        return [_difference_row(boot, test, roles[a], roles[b], c, kind, margin) for c in conditions] if have else []

    def fractions(a, base, ref, conditions):
        have = all(roles[r] in test.probs for r in (a, base, ref))
        return [_fraction_row(boot, test, roles[a], roles[base], roles[ref], c) for c in conditions] if have else []

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
                        + rows("consistency", "dat", ["noisy", "clean"]) + rows("consistency", "source", detail)
                        + fractions("consistency", "source", "multicondition", ["noisy"] + detail)}
    claims["beyond-unlabelled"] = {
        "title": "Beyond the paper: consistency with target music from pieces outside the labelled set beats "
                 "source-only on noisy music",
        "rows": rows("consistency_unlabelled", "source", ["noisy"]),
        "detail": rows("consistency_unlabelled", "source", ["clean"], "non-inferiority")
        + rows("consistency_unlabelled", "consistency", ["noisy", "clean"]) + rows("consistency_unlabelled", "source", detail)}
    claims["ref"] = {"title": "Reference: multicondition (labelled noisy rows) vs source-only",
                     "rows": rows("multicondition", "source", ["noisy"]),
                     "detail": rows("multicondition", "source", ["clean"], "non-inferiority")}
    for key, claim in list(claims.items()):
        claim["verdict"] = _headline(claim["rows"]) if claim["rows"] else "not run"
        if not claim["rows"] and not claim["detail"] and key not in PAPER_CLAIMS:
            del claims[key]  # a comparison beyond the paper whose arms this experiment does not have
    absolute = {arm: {c: _absolute(boot, test, arm, c) for c in masks} for arm in test.probs}
    return {"claims": claims, "absolute": absolute, "seeds": test.seeds, "resamples": resamples,
            "margin": margin, "rules": VERDICT_RULES, "min_clips": MIN_CLIPS, "tags": test.tags,
            "folds": _folds_statement(test.folds, boot.fold_average),
            "test_mixtures": len(test.rows), "test_clips": boot.clips(np.ones(len(test.rows), bool))}


def _folds_statement(folds: np.ndarray | None, averaged: bool) -> str:
    if folds is None:
        return "one test split"
    count = len(np.unique(folds))
    return (f"{count} folds, each scored by its own models; " +
            ("scores are the mean over folds of each fold's score" if averaged else
             "scores pool the test clips of all folds (each fold's model ranks against the others')"))


def _absolute(boot: Bootstrap, test: EvalPredictions, arm: str, condition: str) -> dict:
    mask = test.masks()[condition]
    clips = boot.clips(mask)
    if boot.too_few(mask):
        return {"clips": clips, "too_few": boot.too_few(mask)}
    scores = boot.scores((arm, condition), test.probs[arm], test.labels, mask)
    return {"clips": clips, **{m: dict(zip(("value", "low", "high"), interval(scores[m]))) for m in scores}}


# --- validation curves (claim b) -------------------------------------------------

def early_change_rows(curves: dict[str, dict[int, dict]], labels: dict[str, np.ndarray],
                      clusters: dict[str, np.ndarray], seeds: list[int], early: int, resamples: int, seed: int,
                      margin: float, a: str = "dat", b: str = "dat-no-dc-pretrain",
                      folds: dict[str, np.ndarray] | None = None, fold_average: bool = False) -> list[dict]:
    """Claim (b): the mean change of validation ROC-AUC over the first ``early`` stage-3
    validations relative to stage 3's start, ``a`` minus ``b`` (positive: ``a`` degrades less).

    ``curves[arm][seed][split]``: ``(V, N, T)`` probabilities of stage 3's validations, the
    first at step 0. Clean validation rows are the pre-registered ones; noisy are reported.
    """
    out = []
    for split in ("clean", "noisy"):
        if split not in labels:
            continue
        boot = Bootstrap(clusters[split], len(seeds), resamples, seed, folds=(folds or {}).get(split),
                         fold_average=fold_average)
        everything = np.ones(len(clusters[split]), bool)
        change = {}
        for arm in (a, b):
            per_seed = []
            for s in seeds:
                probs = curves[arm][s][split][: early + 1]
                scores = [boot.macro(p, labels[split], everything)["roc_auc"] for p in probs]
                per_seed.append(np.mean(scores[1:], axis=0) - scores[0])
            reps = np.arange(boot.seed_index.shape[0])[:, None]
            change[arm] = np.stack(per_seed)[boot.seed_index, reps].mean(axis=1)
        diff, low, high = interval(change[a] - change[b])
        clips = boot.clips(everything)
        row = {"a": a, "b": b, "condition": f"valid {split}: mean change over the first {early} stage-3 validations",
               "kind": "superiority", "clips": clips, "mixtures": len(clusters[split]),
               "roc_auc": {"a": float(change[a][0]), "b": float(change[b][0]), "diff": diff, "low": low,
                           "high": high}}
        row["verdict"] = boot.too_few(everything) or verdict(low, high, "superiority")
        if split == "noisy":
            row["verdict"] += " (reported only)"
        out.append(row)
    return out


# --- writing ----------------------------------------------------------------------

def _points(value: float) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{100 * value:+.1f}"


def _row_md(row: dict) -> str:
    if row.get("kind") == "fraction":
        what = f"share of {row['reference']}'s gain over {row['b']} reached by {row['a']}"
        r = row.get("roc_auc")
        value = f"{100 * r['diff']:.0f} % [{100 * r['low']:.0f}, {100 * r['high']:.0f}]" if r else "n/a"
        return f"| {what} | {row['condition']} | {row['clips']} | {value} | — | {row['verdict']} |"
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
             f"seeds {result['seeds']}; {result['test_clips']} test clips, {result['test_mixtures']} test mixtures "
             f"({result.get('folds', 'one test split')}); "
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
            cells.append(cell.get("too_few", f"n/a ({cell['clips']} clips)") if "roc_auc" not in cell else
                         f"{100 * cell['roc_auc']['value']:.1f} [{100 * cell['roc_auc']['low']:.1f}, "
                         f"{100 * cell['roc_auc']['high']:.1f}]")
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_claims(result: dict, out_dir: Path, header: str, stem: str = "claims") -> None:
    from .io import write_json, write_text

    out_dir = Path(out_dir)
    write_json(result, out_dir / f"{stem}.json")
    write_text(claims_markdown(result, header), out_dir / f"{stem}.md")
