"""Paired cluster bootstrap of macro ROC-AUC and PR-AUC, vectorised over resamples.

A resample draws test *clips* (clusters: every mixture made from one clean clip goes in
or out together, since they share its music and tags) and *seeds* with replacement;
both methods of a comparison are scored on the same draw, so their difference is
paired. Drawing a clip k times is the same as weighting its rows by k, so each resample
is a weight vector and the scores are weighted rank statistics, computed for all
resamples at once with one sort per (run, tag).

``weighted_roc_auc`` and ``weighted_average_precision`` equal sklearn's
``roc_auc_score`` and ``average_precision_score`` with ``sample_weight`` (ties included);
the tests check it.
"""

from __future__ import annotations

import numpy as np

__all__ = ["weighted_roc_auc", "weighted_average_precision", "macro_scores_weighted", "cluster_weights",
           "seed_draws", "interval"]


def _grouped(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray):
    """Positive and negative weight per distinct score, scores ascending. ``weights``: (R, N)."""
    order = np.argsort(scores, kind="stable")
    ordered = scores[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    w = weights[:, order]
    positive = labels[order] > 0.5
    pos = np.add.reduceat(np.where(positive, w, 0.0), starts, axis=1)
    neg = np.add.reduceat(np.where(positive, 0.0, w), starts, axis=1)
    return pos, neg


def _roc_auc(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    below = np.cumsum(neg, axis=1) - neg  # negative weight strictly below each distinct score
    wins = (pos * (below + 0.5 * neg)).sum(axis=1)
    total = pos.sum(axis=1) * neg.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, wins / total, np.nan)


def _average_precision(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    tp = np.cumsum(pos[:, ::-1], axis=1)  # thresholds from the highest score down
    fp = np.cumsum(neg[:, ::-1], axis=1)
    total = tp[:, -1]
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        return np.where((total > 0) & (fp[:, -1] > 0), (pos[:, ::-1] * precision).sum(axis=1) / total, np.nan)


def weighted_roc_auc(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """ROC-AUC of one tag under each weight row (NaN where a class has no weight). -> (R,)"""
    return _roc_auc(*_grouped(scores, labels, np.atleast_2d(weights)))


def weighted_average_precision(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Average precision (sklearn's step sum over thresholds) of one tag per weight row. -> (R,)"""
    return _average_precision(*_grouped(scores, labels, np.atleast_2d(weights)))


def macro_scores_weighted(probs: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> dict:
    """Macro ROC-AUC / PR-AUC over the tags per weight row.

    A tag without both classes in a resample is left out of that resample's mean (as
    :func:`dat.metrics.macro_scores` leaves it out of the observed one).
    Shapes: probs, labels ``(N, T)``; weights ``(R, N)`` -> ``{"roc_auc": (R,), "pr_auc": (R,)}``.
    """
    weights = np.atleast_2d(weights).astype(np.float64)
    roc, ap = [], []
    for t in range(labels.shape[1]):
        pos, neg = _grouped(probs[:, t], labels[:, t], weights)
        roc.append(_roc_auc(pos, neg))
        ap.append(_average_precision(pos, neg))
    with _quiet():
        return {"roc_auc": np.nanmean(np.stack(roc), axis=0), "pr_auc": np.nanmean(np.stack(ap), axis=0)}


class _quiet:
    """Silence numpy's 'Mean of empty slice' for resamples where no tag is scorable."""

    def __enter__(self):
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)


def cluster_weights(clusters: np.ndarray, resamples: int, rng: np.random.Generator,
                    strata: np.ndarray | None = None) -> np.ndarray:
    """Row weights ``(R + 1, N)``: row 0 is the observed data (all ones), then ``resamples``
    draws of the distinct clusters with replacement, each row weighted by its cluster's count.
    With ``strata`` (e.g. the test fold of each row), each stratum's clusters are drawn
    within it, so every resample keeps each stratum's size."""
    if strata is not None:
        strata = np.asarray(strata)
        weights = np.ones((resamples + 1, len(clusters)))
        for stratum in np.unique(strata):
            inside = strata == stratum
            weights[:, inside] = cluster_weights(np.asarray(clusters)[inside], resamples, rng)
        return weights
    codes, index = np.unique(clusters, return_inverse=True)
    draws = rng.integers(0, len(codes), size=(resamples, len(codes)))
    counts = np.zeros((resamples, len(codes)))
    np.add.at(counts, (np.arange(resamples)[:, None], draws), 1.0)
    return np.vstack([np.ones(len(clusters)), counts[:, index]])


def seed_draws(num_seeds: int, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """``(R + 1, S)`` seed indices: row 0 every seed once, then draws with replacement."""
    return np.vstack([np.arange(num_seeds)[None], rng.integers(0, num_seeds, size=(resamples, num_seeds))])


def interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """(observed, low, high): row 0 is the observed statistic, the rest the bootstrap draws
    (percentile interval)."""
    draws = values[1:][np.isfinite(values[1:])]
    if not np.isfinite(values[0]) or draws.size == 0:
        return float("nan"), float("nan"), float("nan")
    tail = (1.0 - level) / 2.0
    return float(values[0]), float(np.quantile(draws, tail)), float(np.quantile(draws, 1.0 - tail))
