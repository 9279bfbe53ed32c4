"""Any corpus described by one CSV/TSV table (adapter name ``csv``).

The table (default ``ROOT/index.csv`` or ``ROOT/index.tsv``) has a ``path`` column
(relative to ROOT) and optionally ``tags`` (``;``-separated), ``group``, ``split``,
``category`` and ``subcategory``. Unlike a folder scan, the table is the authority: only
listed files are used, and listed files that are missing make a partial copy.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import NoisemixError
from ..io import read_text_table
from .. import schema as S
from ..roots import check_relative_path
from ..schema import ManifestError
from .base import Adapter, Listing, corpus_file, present_files

__all__ = ["ADAPTER", "COLUMNS"]

# The table speaks the sources table's language: the same column names.
COLUMNS = (S.PATH, S.TAGS, S.GROUP, S.SPLIT, S.CATEGORY, S.SUBCATEGORY)
LAYOUT = "ROOT/index.csv (or index.tsv) with columns path[,tags,group,split,category,subcategory]"


def _table_path(folder: Path, option: str) -> Path:
    if option:
        return corpus_file(folder, option)
    for name in ("index.csv", "index.tsv"):
        if (folder / name).is_file():
            return folder / name
    raise NoisemixError(f"{folder}: no index.csv or index.tsv; the csv adapter expects {LAYOUT} (or option table=FILE)")


def _listing(folder: Path, options: dict) -> Listing:
    path = _table_path(folder, options["table"])
    table = read_text_table(path)
    unknown = [c for c in table.columns if c not in COLUMNS]
    if "path" not in table.columns or unknown:
        raise NoisemixError(f"{path}: columns must be path and any of {', '.join(COLUMNS[1:])} "
                            f"(found: {', '.join(table.columns)})")
    duplicated = table["path"][table["path"].duplicated()]
    if len(duplicated):
        raise NoisemixError(f"{path}: path {duplicated.iloc[0]!r} listed twice")
    meta = {}
    for record in table.to_dict("records"):
        rel = record.pop("path").strip()
        try:
            check_relative_path(rel, str(path))
        except ManifestError as exc:
            raise NoisemixError(str(exc)) from None
        entry = {k: v.strip() for k, v in record.items() if k != "tags" and v.strip()}
        if options["category"] and "category" not in entry:
            entry["category"] = options["category"]
        if "tags" in record:
            entry["tags"] = S.tags_from_text(record["tags"])
        meta[rel] = entry
    present, notes = present_files(folder, list(meta), "csv", options["allow_partial"])
    return Listing({r: meta[r] for r in present}, notes)


ADAPTER = Adapter(
    name="csv", role="", title="corpus described by a CSV/TSV table",
    licence="as stated by the corpus's publisher", layout=LAYOUT,
    defaults={"table": "", "category": "", "allow_partial": False}, lister=_listing,
)
