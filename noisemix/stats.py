"""Counts and an SNR histogram of a manifest, for people who would rather look than read."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from . import dsp
from . import schema as S
from .manifest import Manifest

__all__ = ["count_table", "tag_table", "cue_table", "row_level_db", "plot_snr_histogram", "SNR_BIN_DB"]

SNR_BIN_DB = 5.0


def snr_bins(snr: pd.Series) -> pd.Series:
    """Label SNRs by bin, e.g. ``[-5, 0)``; clean references are ``clean``."""
    low = np.floor(snr / SNR_BIN_DB) * SNR_BIN_DB
    labels = [f"[{lo:g}, {lo + SNR_BIN_DB:g})" if np.isfinite(lo) else "clean" for lo in low]
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


def plot_snr_histogram(manifest: Manifest, path: Path) -> Path:
    """A PNG with one SNR histogram per noise category (all splits stacked)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    noisy = manifest.mixtures[manifest.mixtures[S.NOISE_CATEGORY] != ""]
    categories = [c for c in S.CATEGORIES if c in set(noisy[S.NOISE_CATEGORY])] or ["(none)"]
    fig, axes = plt.subplots(1, len(categories), figsize=(4 * len(categories), 3.2), sharey=True, squeeze=False)
    low = np.floor(noisy[S.SNR_DB].min() if len(noisy) else 0) - 1
    high = np.ceil(noisy[S.SNR_DB].max() if len(noisy) else 1) + 1
    edges = np.linspace(low, high, 27)
    for axis, category in zip(axes[0], categories):
        part = noisy[noisy[S.NOISE_CATEGORY] == category]
        data = [part.loc[part[S.SPLIT] == s, S.SNR_DB] for s in S.SPLITS]
        axis.hist(data, bins=edges, stacked=True, label=list(S.SPLITS))
        axis.set_title(f"{category} ({len(part)})")
        axis.set_xlabel("target SNR (dB)")
    axes[0][0].set_ylabel("mixtures")
    axes[0][-1].legend(fontsize="small")
    fig.suptitle(f"SNR distribution: {manifest.directory.name}")
    fig.tight_layout()
    from .io import atomic_path

    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return Path(path)
