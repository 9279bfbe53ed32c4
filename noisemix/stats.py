"""Counts and an SNR histogram of a manifest, for people who would rather look than read."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from . import dsp
from . import schema as S
from .manifest import Manifest
from .snr import is_snr_grid, snr_group_label, snr_groups, snr_levels

__all__ = ["count_table", "tag_table", "cue_table", "row_level_db", "plot_snr_histogram", "histogram_edges", "snr_bins"]


def snr_bins(snr: pd.Series) -> pd.Series:
    """Each row's SNR group label (:mod:`noisemix.snr`: a grid's level, e.g. ``5.0``, or a
    bin, e.g. ``5.0..10.0``); clean references are ``clean``."""
    values = snr.to_numpy(dtype=np.float64)
    labels = np.full(len(values), "clean", dtype=object)
    noisy = np.isfinite(values)
    keys, bin_db = snr_groups(values[noisy])
    labels[noisy] = [snr_group_label(key, bin_db) for key in keys]
    return pd.Series(labels, index=snr.index)


def count_table(manifest: Manifest) -> pd.DataFrame:
    """Mixtures per split x category x SNR bin (rows) in split order."""
    mixtures = manifest.mixtures
    frame = pd.DataFrame({
        S.SPLIT: mixtures[S.SPLIT],
        S.NOISE_CATEGORY: mixtures[S.NOISE_CATEGORY].replace("", "(clean)"),
        "snr_bin": snr_bins(mixtures[S.SNR_DB]),
        "_order": mixtures[S.SNR_DB].fillna(-1e9),
    })
    table = (frame.groupby([S.SPLIT, S.NOISE_CATEGORY, "snr_bin"])
             .agg(mixtures=("_order", "size"), _key=("_order", "min")).reset_index())
    table["_split"] = table[S.SPLIT].map({s: i for i, s in enumerate(S.SPLITS)})
    return table.sort_values(["_split", S.NOISE_CATEGORY, "_key"]).drop(columns=["_split", "_key"]).reset_index(drop=True)


def row_level_db(mixtures: pd.DataFrame) -> pd.Series:
    """Each row's level relative to its clean segment at unit gain (dB), from the stored gains.

    The SNR fixes the noise's share of an uncorrelated sum, so a row's level is its clean
    gain undone of :func:`dsp.level_match_scale`: known without decoding (what it leaves out
    is the segments' correlation). Clean rows: ``20 log10 g_c``.
    """
    gain = mixtures[S.CLEAN_GAIN].to_numpy(dtype=np.float64)
    scale = dsp.level_match_scale(mixtures[S.SNR_DB].to_numpy(dtype=np.float64))
    return pd.Series(20 * np.log10(gain / scale), index=mixtures.index)


def cue_table(manifest: Manifest) -> pd.DataFrame:
    """Per split x category x SNR bin: the median row level (dB re its clean segment, see
    :func:`row_level_db`) and the share of looped noise. A level that moves with the SNR
    or differs between clean and noisy rows gives the answer away to a model."""
    mixtures = manifest.mixtures
    frame = pd.DataFrame({
        S.SPLIT: mixtures[S.SPLIT], S.NOISE_CATEGORY: mixtures[S.NOISE_CATEGORY].replace("", "(clean)"),
        "snr_bin": snr_bins(mixtures[S.SNR_DB]), "_order": mixtures[S.SNR_DB].fillna(-1e9),
        "level_db": row_level_db(mixtures), "looped": mixtures[S.NOISE_LOOPED].astype(float),
    })
    table = (frame.groupby([S.SPLIT, S.NOISE_CATEGORY, "snr_bin"])
             .agg(median_level_db=("level_db", "median"), looped_share=("looped", "mean"), _key=("_order", "min"))
             .reset_index())
    table["_split"] = table[S.SPLIT].map({s: i for i, s in enumerate(S.SPLITS)})
    table = table.sort_values(["_split", S.NOISE_CATEGORY, "_key"]).drop(columns=["_split", "_key"])
    return table.round({"median_level_db": 2, "looped_share": 3}).reset_index(drop=True)


def tag_table(manifest: Manifest) -> pd.DataFrame:
    """Mixtures per tag and split, in the manifest's tag order."""
    exploded = manifest.mixtures[[S.SPLIT, S.TAGS]].explode(S.TAGS).dropna()
    table = exploded.groupby([S.TAGS, S.SPLIT]).size().unstack(fill_value=0)
    table = table.reindex(columns=[s for s in S.SPLITS if s in table.columns])
    order = manifest.tags or sorted(table.index)
    return table.reindex([t for t in order if t in table.index])


def histogram_edges(snr) -> np.ndarray:
    """Bin edges for an SNR histogram that show the SNRs as built.

    A grid (a few levels) gets one bin per level, the level at its centre (edges half-way
    between levels); a continuous range gets 1 dB bins (at most 50) from the floor of its
    lowest SNR to the ceiling of its highest, so every value sits inside a bin and the bins
    cover the range.
    """
    levels = snr_levels(snr)
    if levels.size == 0:
        return np.array([0.0, 1.0])
    if is_snr_grid(levels):
        half = np.diff(levels).min() / 2 if levels.size > 1 else 0.5
        return np.concatenate([[levels[0] - half], (levels[:-1] + levels[1:]) / 2, [levels[-1] + half]])
    low, high = np.floor(levels[0]), np.ceil(levels[-1])
    high = high if high > levels[-1] else high + 1  # the highest value inside, not on the last edge
    return np.linspace(low, high, int(min(high - low, 50)) + 1)


def plot_snr_histogram(manifest: Manifest, path: Path) -> Path | None:
    """A PNG with one SNR histogram per noise category (splits stacked), integer counts;
    None, and nothing written, when the manifest has no noisy rows (never an empty plot:
    the callers say there is nothing to plot)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    noisy = manifest.mixtures[manifest.mixtures[S.NOISE_CATEGORY] != ""]
    if noisy.empty:
        return None
    categories = [c for c in S.CATEGORIES if c in set(noisy[S.NOISE_CATEGORY])]
    categories += sorted(set(noisy[S.NOISE_CATEGORY]) - set(categories))
    fig, axes = plt.subplots(1, len(categories), figsize=(4 * len(categories), 3.2), sharey=True, squeeze=False)
    edges = histogram_edges(noisy[S.SNR_DB])
    grid = is_snr_grid(noisy[S.SNR_DB])  # narrower bars: one per level, gaps between
    for axis, category in zip(axes[0], categories):
        part = noisy[noisy[S.NOISE_CATEGORY] == category]
        splits = [s for s in S.SPLITS if (part[S.SPLIT] == s).any()]
        axis.hist([part.loc[part[S.SPLIT] == s, S.SNR_DB] for s in splits], bins=edges, stacked=True, label=splits,
                  rwidth=0.7 if grid else None)
        axis.set_xlim(edges[0], edges[-1])
        axis.set_title(f"{category} ({len(part):,})")
        axis.set_xlabel("target SNR (dB)")
        axis.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0][0].set_ylabel("mixtures")
    axes[0][-1].legend(fontsize="small")
    fig.suptitle(f"SNR distribution: {manifest.directory.name}")
    fig.tight_layout()
    from .io import atomic_path

    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return Path(path)
