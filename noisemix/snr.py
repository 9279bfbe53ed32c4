"""How mixtures are grouped by SNR: the one definition behind noisemix's tables and plots
and dat's scores.

A manifest with a few distinct SNRs (a grid design) is grouped by level; one with more
(a random design draws a new SNR per row) in ``SNR_BIN_DB``-wide bins, lower edge included.
"""

from __future__ import annotations

import numpy as np

__all__ = ["SNR_BIN_DB", "GRID_LEVELS_MAX", "snr_key", "snr_levels", "is_snr_grid", "snr_groups", "snr_group_label"]

SNR_BIN_DB = 5.0
# More distinct levels than this are a continuous range, grouped in bins: per-level cells
# of a random design would hold a clip or two each.
GRID_LEVELS_MAX = 12


def snr_key(snr_db: float) -> str:
    """Group key of an SNR level (0.1 dB resolution, so '5.0' and '4.99999' meet)."""
    return f"{round(float(snr_db), 1):.1f}"


def snr_levels(snr_db) -> np.ndarray:
    """The distinct finite SNRs, ascending (clean rows' NaN left out)."""
    levels = np.unique(np.asarray(snr_db, dtype=np.float64))
    return levels[np.isfinite(levels)]


def is_snr_grid(snr_db) -> bool:
    """Few enough distinct levels (at :func:`snr_key` resolution) to keep each apart."""
    return len({snr_key(v) for v in snr_levels(snr_db)}) <= GRID_LEVELS_MAX


def snr_groups(snr_db) -> tuple[np.ndarray, float | None]:
    """Group key per (noisy) row and the bin width: levels as they are (a grid), or the
    lower edges of ``SNR_BIN_DB``-wide bins (None for a grid)."""
    snr_db = np.asarray(snr_db, dtype=np.float64)
    if is_snr_grid(snr_db):
        return np.array([snr_key(v) for v in snr_db], dtype=object), None
    edges = np.floor(snr_db / SNR_BIN_DB) * SNR_BIN_DB
    return np.array([snr_key(v) for v in edges], dtype=object), SNR_BIN_DB


def snr_group_label(key: str, bin_db: float | None) -> str:
    """'5.0' for a level; '5.0..10.0' for a bin (lower edge included, upper excluded)."""
    return key if not bin_db else f"{key}..{float(key) + bin_db:.1f}"
