"""A manifest in the formats neighbouring tools read: a Lhotse ``CutSet`` (JSONL, written with
Lhotse's own objects: :mod:`noisemix.export_lhotse`), a Hugging Face ``audiofolder`` over
rendered audio (:mod:`noisemix.export_audiofolder`) and a plain CSV.

CSV: one row per mixture with paths, offsets (samples and seconds), gains, SNR,
category, split and tags (``;``-joined).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from . import schema as S
from .errors import NoisemixError
from .io import write_text
from .manifest import Manifest, load_manifest

__all__ = ["export_manifest", "csv_text", "FORMATS"]

FORMATS = ("lhotse", "audiofolder", "csv")
# Manifest columns keep their names; the added columns are export-only.
CSV_COLUMNS = (S.MIXTURE_ID, S.SPLIT, S.SAMPLE_RATE, S.NUM_OUTPUT_FRAMES, "clean_root", "clean_path", S.CLEAN_OFFSET,
               "clean_offset_s", S.CLEAN_GAIN, "noise_root", "noise_path", S.NOISE_OFFSET, "noise_offset_s",
               S.NOISE_LOOPED, S.NOISE_GAIN, S.SNR_DB, S.NOISE_CATEGORY, S.NOISE_SUBCATEGORY, S.TAGS,
               S.NOISE_TRANSFORMS, S.MIXTURE_TRANSFORMS, "noise_next_paths")


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
    manifest = load_manifest(directory)
    write_text(csv_text(manifest), out)
    return len(manifest.mixtures), {}


def csv_text(manifest: Manifest) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    rate = manifest.sample_rate
    sources = manifest.sources
    for m in manifest.mixtures.to_dict("records"):
        noisy = not S.is_clean_reference(m[S.NOISE_SOURCE_ID])
        noise = sources.loc[m[S.NOISE_SOURCE_ID]] if noisy else None
        clean = sources.loc[m[S.CLEAN_SOURCE_ID]]
        writer.writerow([
            m[S.MIXTURE_ID], m[S.SPLIT], m[S.SAMPLE_RATE], m[S.NUM_OUTPUT_FRAMES], clean[S.ROOT], clean[S.PATH],
            m[S.CLEAN_OFFSET], repr(m[S.CLEAN_OFFSET] / rate), repr(float(m[S.CLEAN_GAIN])),
            noise[S.ROOT] if noisy else "", noise[S.PATH] if noisy else "", m[S.NOISE_OFFSET] if noisy else "",
            repr(m[S.NOISE_OFFSET] / rate) if noisy else "", str(bool(m[S.NOISE_LOOPED])).lower() if noisy else "",
            repr(float(m[S.NOISE_GAIN])), repr(float(m[S.SNR_DB])) if S.snr_is_defined(m[S.SNR_DB]) else "",
            m[S.NOISE_CATEGORY], m[S.NOISE_SUBCATEGORY], ";".join(m[S.TAGS]),
            m[S.NOISE_TRANSFORMS], m[S.MIXTURE_TRANSFORMS],
            ";".join(f"{sources.loc[i, S.ROOT]}/{sources.loc[i, S.PATH]}" for i in m[S.NOISE_NEXT_IDS]),
        ])
    return buffer.getvalue()
