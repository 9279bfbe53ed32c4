"""Licences per file, from Debian's machine-readable copyright files, and ATTRIBUTION.csv.

A Debian ``copyright`` file (DEP-5) lists ``Files:`` patterns relative to the *source*
tree, e.g. ``share/sounds/lomiri/ringtones/Wooden?Drive.ogg``, while we know the
*installed* path ``/usr/share/sounds/lomiri/ringtones/Wooden Drive.ogg``. A pattern is
taken to match when it matches a trailing run of the installed path's components; as
DEP-5 prescribes, the last matching stanza wins.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from fnmatch import fnmatchcase
from functools import lru_cache
from pathlib import Path

__all__ = ["Attribution", "license_for", "parse_dep5", "write_attribution", "ATTRIBUTION_COLUMNS"]

ATTRIBUTION_COLUMNS = ("path", "package", "package_version", "original_path", "license")


@dataclass(frozen=True)
class Attribution:
    """Where one corpus file came from."""

    package: str
    package_version: str
    original_path: str
    license: str


@dataclass(frozen=True)
class _Stanza:
    patterns: tuple[str, ...]
    license: str
    copyright: str


def _fields(paragraph: str) -> dict[str, str]:
    """Field name -> value of one DEP-5 paragraph; continuation lines joined with newlines."""
    fields: dict[str, str] = {}
    current = None
    for line in paragraph.splitlines():
        if line[:1] in (" ", "\t") and current:
            fields[current] += "\n" + line.strip()
        elif ":" in line:
            current, value = line.split(":", 1)
            current = current.strip().lower()
            fields[current] = value.strip()
    return fields


def parse_dep5(text: str) -> list[_Stanza]:
    """The ``Files`` stanzas of a DEP-5 copyright file, in file order."""
    stanzas = []
    for paragraph in text.replace("\r\n", "\n").split("\n\n"):
        fields = _fields(paragraph)
        if "files" not in fields:
            continue
        licence = fields.get("license", "").split("\n", 1)[0].strip()
        holders = "; ".join(x.strip() for x in fields.get("copyright", "").split("\n") if x.strip())
        stanzas.append(_Stanza(tuple(fields["files"].split()), licence, holders))
    return stanzas


def _matches(pattern: str, path: str) -> bool:
    parts = path.strip("/").split("/")
    return any(fnmatchcase("/".join(parts[i:]), pattern) for i in range(len(parts)))


@lru_cache(maxsize=None)
def _stanzas(copyright_file: str) -> tuple[_Stanza, ...]:
    try:
        return tuple(parse_dep5(Path(copyright_file).read_text(encoding="utf-8", errors="replace")))
    except OSError:
        return ()


def license_for(package: str, path: str) -> str:
    """'<licence> (Copyright: <holders>)' for an installed file of a Debian package."""
    copyright_file = f"/usr/share/doc/{package}/copyright"
    found = None
    for stanza in _stanzas(copyright_file):
        if any(_matches(p, path) for p in stanza.patterns):
            found = stanza
    if found is None or not found.license:
        return f"see {copyright_file}"
    return f"{found.license} (Copyright: {found.copyright})" if found.copyright else found.license


def write_attribution(rows: dict[str, Attribution], target: Path) -> None:
    """ATTRIBUTION.csv sorted by corpus path; ``rows`` maps path (relative to the corpus) to source."""
    write_csv([[path, a.package, a.package_version, a.original_path, a.license]
               for path, a in sorted(rows.items())], list(ATTRIBUTION_COLUMNS), target)


def write_csv(rows: list[list], header: list[str], target: Path) -> None:
    """A small CSV table with Unix line ends (the corpus's tables are compared byte for byte)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    target.write_text(buffer.getvalue(), encoding="utf-8")
