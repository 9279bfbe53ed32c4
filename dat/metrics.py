"""Tagging metrics with sklearn's definitions: per-tag ROC-AUC and average precision
(PR-AUC), and their macro averages over the tags that are scorable in a set of clips.

A tag with no positive (or no negative) clip in a set has no AUC; it is left out of that
set's macro average and the number of tags scored is reported next to it.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

__all__ = ["per_tag_scores", "macro_scores"]


def per_tag_scores(labels: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(roc_auc, pr_auc)`` per tag; NaN where a tag has a single class in ``labels``."""
    labels = np.asarray(labels)
    probs = np.asarray(probs, dtype=np.float64)
    roc = np.full(labels.shape[1], np.nan)
    pr = np.full(labels.shape[1], np.nan)
    for t in range(labels.shape[1]):
        positives = labels[:, t].sum()
        if 0 < positives < labels.shape[0]:
            roc[t] = roc_auc_score(labels[:, t], probs[:, t])
            pr[t] = average_precision_score(labels[:, t], probs[:, t])
    return roc, pr


def macro_scores(labels: np.ndarray, probs: np.ndarray) -> dict:
    """Macro ROC-AUC and PR-AUC over scorable tags, with the clip and tag counts."""
    roc, pr = per_tag_scores(labels, probs)
    scored = int(np.isfinite(roc).sum())
    return {
        "roc_auc": float(np.nanmean(roc)) if scored else float("nan"),
        "pr_auc": float(np.nanmean(pr)) if scored else float("nan"),
        "clips": int(labels.shape[0]),
        "tags_scored": scored,
    }
