"""A manifest in the formats neighbouring tools read: a Lhotse ``CutSet`` (JSONL, written with
Lhotse's own objects: :mod:`noisemix.export.lhotse`), a Hugging Face ``audiofolder`` over
rendered audio (:mod:`noisemix.export.audiofolder`) and a plain CSV (:mod:`noisemix.export.csv`).
What every format tells of a row is :func:`noisemix.export.fields.row_fields`.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import NoisemixError
from ..io import write_text
from ..manifest import load_manifest
from .csv import csv_text

__all__ = ["export_manifest", "csv_text", "FORMATS"]

FORMATS = ("lhotse", "audiofolder", "csv")


def export_manifest(directory: Path, fmt: str, out: Path | None, roots: dict[str, Path] | None = None,
                    renders: Path | None = None) -> tuple[int, dict[str, int]]:
    """Write ``out`` in ``fmt`` (``audiofolder``: metadata files into ``renders``); return the
    number of mixtures written and, for Lhotse, how many cuts are not exactly our render, per reason."""
    if fmt not in FORMATS:
        raise NoisemixError(f"--format {fmt!r}: choose one of {', '.join(FORMATS)}")
    if renders is not None and fmt == "csv":
        raise NoisemixError("--renders: --format csv lists the sources, not rendered files")
    if fmt == "audiofolder" and (renders is None or out is not None):
        raise NoisemixError("--format audiofolder: give the rendered folder with --renders AUDIO (the metadata "
                            "files are written beside its audio) and no --out")
    if fmt != "audiofolder" and out is None:
        raise NoisemixError(f"--format {fmt}: give the file to write with --out")
    manifest = load_manifest(directory, roots)  # roots resolve as render resolves them
    if fmt == "audiofolder":
        from .audiofolder import write_audiofolder_metadata

        return sum(write_audiofolder_metadata(manifest, renders).values()), {}
    if fmt == "lhotse":
        from .lhotse import inexact_counts, lhotse_cuts, write_cutset

        cuts = lhotse_cuts(manifest, renders).to_eager()
        write_cutset(cuts, out)
        return len(cuts), inexact_counts(cuts)
    write_text(csv_text(manifest), out)
    return len(manifest.mixtures), {}
