"""A manifest as a plain CSV: one row per mixture with paths (absolute, and root-relative),
offsets (samples and seconds), gains, SNR, category, split and tags (``;``-joined)."""

from __future__ import annotations

import pandas as pd

from .. import schema as S
from ..manifest import Manifest

__all__ = ["csv_text", "CSV_COLUMNS"]

# Manifest columns keep their names; the added columns are export-only.
CSV_COLUMNS = (S.MIXTURE_ID, S.SPLIT, S.SAMPLE_RATE, S.NUM_FRAMES, "clean_root", "clean_path", "clean_file",
               S.CLEAN_OFFSET, "clean_offset_s", S.CLEAN_GAIN, "noise_root", "noise_path", "noise_file", S.NOISE_OFFSET,
               "noise_offset_s",
               S.NOISE_LOOPED, S.NOISE_GAIN, S.SNR_DB, S.NOISE_CATEGORY, S.NOISE_SUBCATEGORY, S.TAGS,
               S.NOISE_TRANSFORMS, S.MIXTURE_TRANSFORMS, "noise_next_paths")


def csv_text(manifest: Manifest) -> str:
    """One CSV row per mixture (vectorised: a column at a time). ``clean_file`` / ``noise_file``
    are absolute, resolved from the manifest's roots (``load_manifest(..., roots)``: ``--root``);
    ``clean_root`` / ``clean_path`` stay root-relative for moving the corpus."""
    m, sources, rate = manifest.mixtures, manifest.sources, manifest.sample_rate
    noisy = m[S.NOISE_SOURCE_ID] != ""
    files = pd.Series({sid: str(manifest.source_path(sid)) for sid in sources.index}, dtype=object)

    def when_noisy(values):
        return values.where(noisy, "")

    def exact(values):  # shortest text that reads back to the same double
        return values.astype(float).map(repr)

    columns = {
        S.MIXTURE_ID: m[S.MIXTURE_ID], S.SPLIT: m[S.SPLIT], S.SAMPLE_RATE: m[S.SAMPLE_RATE],
        S.NUM_FRAMES: m[S.NUM_FRAMES], "clean_root": m[S.CLEAN_SOURCE_ID].map(sources[S.ROOT]),
        "clean_path": m[S.CLEAN_SOURCE_ID].map(sources[S.PATH]), "clean_file": m[S.CLEAN_SOURCE_ID].map(files),
        S.CLEAN_OFFSET: m[S.CLEAN_OFFSET], "clean_offset_s": exact(m[S.CLEAN_OFFSET] / rate),
        S.CLEAN_GAIN: exact(m[S.CLEAN_GAIN]),
        "noise_root": when_noisy(m[S.NOISE_SOURCE_ID].map(sources[S.ROOT])),
        "noise_path": when_noisy(m[S.NOISE_SOURCE_ID].map(sources[S.PATH])),
        "noise_file": when_noisy(m[S.NOISE_SOURCE_ID].map(files)),
        S.NOISE_OFFSET: when_noisy(m[S.NOISE_OFFSET].astype(str)),
        "noise_offset_s": when_noisy(exact(m[S.NOISE_OFFSET] / rate)),
        S.NOISE_LOOPED: when_noisy(m[S.NOISE_LOOPED].map({True: "true", False: "false"})),
        S.NOISE_GAIN: exact(m[S.NOISE_GAIN]),
        S.SNR_DB: exact(m[S.SNR_DB]).where(m[S.SNR_DB].notna(), ""),
        S.NOISE_CATEGORY: m[S.NOISE_CATEGORY], S.NOISE_SUBCATEGORY: m[S.NOISE_SUBCATEGORY],
        S.TAGS: m[S.TAGS].map(";".join), S.NOISE_TRANSFORMS: m[S.NOISE_TRANSFORMS],
        S.MIXTURE_TRANSFORMS: m[S.MIXTURE_TRANSFORMS],
        "noise_next_paths": m[S.NOISE_NEXT_IDS].map(lambda ids: ";".join(
            f"{sources.at[i, S.ROOT]}/{sources.at[i, S.PATH]}" for i in ids)),
    }
    return pd.DataFrame(columns, columns=CSV_COLUMNS).to_csv(index=False, lineterminator="\n")
