"""A manifest in the formats neighbouring tools read: a Lhotse ``CutSet`` (JSONL, written with
Lhotse's own objects: :mod:`noisemix.export_lhotse`), a Hugging Face ``audiofolder`` over
rendered audio (:mod:`noisemix.export_audiofolder`) and a plain CSV.

CSV: one row per mixture with paths (absolute, and root-relative), offsets (samples and
seconds), gains, SNR, category, split and tags (``;``-joined).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from . import schema as S
from .errors import NoisemixError
from .io import write_text
from .manifest import Manifest, load_manifest, load_renders, rendered_files

__all__ = ["export_manifest", "csv_text", "row_fields", "complete_renders", "FORMATS"]

FORMATS = ("lhotse", "audiofolder", "csv")
# Manifest columns keep their names; the added columns are export-only.
CSV_COLUMNS = (S.MIXTURE_ID, S.SPLIT, S.SAMPLE_RATE, S.NUM_OUTPUT_FRAMES, "clean_root", "clean_path", "clean_file",
               S.CLEAN_OFFSET, "clean_offset_s", S.CLEAN_GAIN, "noise_root", "noise_path", "noise_file", S.NOISE_OFFSET,
               "noise_offset_s",
               S.NOISE_LOOPED, S.NOISE_GAIN, S.SNR_DB, S.NOISE_CATEGORY, S.NOISE_SUBCATEGORY, S.TAGS,
               S.NOISE_TRANSFORMS, S.MIXTURE_TRANSFORMS, "noise_next_paths")


def row_fields(row) -> dict:
    """What every export tells of a row beside its audio (JSON-ready: None where a clean row
    has no noise)."""
    noisy = not S.is_clean_reference(row[S.NOISE_SOURCE_ID])
    return {"split": row[S.SPLIT], "tags": list(row[S.TAGS]),
            "snr_db": float(row[S.SNR_DB]) if noisy and S.snr_is_defined(row[S.SNR_DB]) else None,
            "noise_category": row[S.NOISE_CATEGORY] or None, "noise_subcategory": row[S.NOISE_SUBCATEGORY] or None,
            "clean_source_id": row[S.CLEAN_SOURCE_ID], "noise_source_id": row[S.NOISE_SOURCE_ID] if noisy else None}


def complete_renders(manifest: Manifest, renders: Path) -> dict[str, dict[str, str]]:
    """``stem -> {mixture id: path in renders}`` of a render folder that holds every mixture of
    the manifest, current (stale renders and missing mixtures are refused in one line)."""
    files = rendered_files(load_renders(renders, manifest))
    missing = [mid for mid in manifest.mixtures[S.MIXTURE_ID] if mid not in files.get(S.STEM_MIXTURE, {})]
    if missing:
        raise NoisemixError(f"{renders}: {len(missing)} mixture(s) not rendered, e.g. {missing[0]}; "
                            "run noisemix render first")
    return files


def export_manifest(directory: Path, fmt: str, out: Path | None, roots: dict[str, Path] | None = None,
                    renders: Path | None = None) -> tuple[int, dict[str, int]]:
    """Write ``out`` in ``fmt`` (``audiofolder``: metadata files into ``renders``); return the
    number of mixtures written and, for Lhotse, how many cuts are not exactly our render, per reason."""
    if fmt not in FORMATS:
        raise NoisemixError(f"--format {fmt!r}: choose one of {', '.join(FORMATS)}")
    if renders is not None and fmt == "csv":
        raise NoisemixError("--renders: --format csv lists the sources, not rendered files")
    if fmt == "audiofolder":
        from .export_audiofolder import write_audiofolder_metadata

        if renders is None or out is not None:
            raise NoisemixError("--format audiofolder: give the rendered folder with --renders AUDIO (the metadata "
                                "files are written beside its audio) and no --out")
        return sum(write_audiofolder_metadata(load_manifest(directory, roots), renders).values()), {}
    if out is None:
        raise NoisemixError(f"--format {fmt}: give the file to write with --out")
    if fmt == "lhotse":
        from .export_lhotse import inexact_counts, lhotse_cuts, write_cutset

        manifest = load_manifest(directory, roots)  # roots resolve as render resolves them
        cuts = lhotse_cuts(manifest, renders).to_eager()
        write_cutset(cuts, out)
        return len(cuts), inexact_counts(cuts)
    manifest = load_manifest(directory, roots)
    write_text(csv_text(manifest), out)
    return len(manifest.mixtures), {}


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
        S.NUM_OUTPUT_FRAMES: m[S.NUM_OUTPUT_FRAMES], "clean_root": m[S.CLEAN_SOURCE_ID].map(sources[S.ROOT]),
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
