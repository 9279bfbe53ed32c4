"""What every corpus adapter shares: the listing it returns, options, partial-copy checks.

An adapter reads a public corpus in its published layout and says, for each audio
file, what :func:`noisemix.sources.scan` cannot guess from folder names: tags, noise
category, group (the unit that never straddles splits) and split. Hashing, decoding
and caching stay in ``sources`` so an adapter corpus and a plain folder share one path.
Paths in a listing are relative to the corpus root *as published*, so two labs with
the same corpus get the same source ids and hence the same mixtures.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import NoisemixError

__all__ = ["Listing", "Adapter", "parse_options", "present_files", "corpus_file", "require_file", "partial_copy",
           "MISSING_SHOWN", "PARTIAL_COPY"]

MISSING_SHOWN = 10  # missing files named in a message; the count is always given
# Build-report notes that start with this mark a benchmark built from an incomplete corpus (the card flags them).
PARTIAL_COPY = "partial copy: "


@dataclass
class Listing:
    """Files of a corpus (relative POSIX paths) with their metadata, plus notes for the report.

    ``meta[path]`` may hold ``tags`` (list), ``category``, ``subcategory``, ``group`` and ``split``.
    """

    meta: dict[str, dict]
    notes: list[str] = field(default_factory=list)

    @property
    def files(self) -> list[str]:
        return sorted(self.meta)


@dataclass(frozen=True)
class Adapter:
    """A corpus reader: its name, the role it plays, its options and its licence."""

    name: str
    role: str                       # 'clean', 'noise', or '' for either
    title: str
    licence: str
    layout: str                     # the expected layout, quoted in error messages
    defaults: dict                  # option name -> default value (its type is the option's type)
    lister: object                  # (folder: Path, options: dict) -> Listing
    vocabulary: tuple = ()          # fixed tag order (clean corpora with a canonical label set)
    check: object = None            # (options: dict) -> None; refuses values the lister cannot use

    def listing(self, folder: Path, options: dict) -> Listing:
        return self.lister(Path(folder), parse_options(self, options))


def parse_options(adapter: Adapter, raw: dict) -> dict:
    """Options given as TOML values or CLI text, converted to the type of each default."""
    unknown = sorted(set(raw) - set(adapter.defaults))
    if unknown:
        raise NoisemixError(f"{adapter.name}: unknown option(s) {', '.join(unknown)}; "
                            f"known: {', '.join(sorted(adapter.defaults)) or '(none)'}")
    options = dict(adapter.defaults)
    for key, value in raw.items():
        options[key] = _convert(adapter.name, key, value, adapter.defaults[key])
    if adapter.check:
        adapter.check(options)  # a recipe with a bad value fails when it is read, not at build time
    return options


def _convert(name: str, key: str, value, default):
    where = f"{name} option {key}={value!r}"
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("true", "yes", "1", "false", "no", "0"):
            return str(value).lower() in ("true", "yes", "1")
        raise NoisemixError(f"{where}: expected true or false")
    if isinstance(default, tuple):
        items = value if isinstance(value, (list, tuple)) else [v for v in str(value).split(",") if v.strip()]
        try:
            return tuple(int(v) for v in items)
        except (TypeError, ValueError):
            raise NoisemixError(f"{where}: expected a list of integers such as 1,2,3") from None
    if isinstance(value, (list, dict, bool)):
        raise NoisemixError(f"{where}: expected text")
    return str(value)


def present_files(folder: Path, expected: list[str], corpus: str, allow_partial: bool) -> tuple[list[str], list[str]]:
    """The expected files that exist, and notes; a partial copy fails unless allowed.

    A benchmark built from a partial copy is not comparable with the publisher's, so the
    default is to stop and name the missing files.
    """
    missing = [rel for rel in expected if not (folder / rel).is_file()]
    gone = set(missing)
    present = [rel for rel in expected if rel not in gone]
    if not missing:
        return present, []
    shown = ", ".join(missing[:MISSING_SHOWN]) + (", ..." if len(missing) > MISSING_SHOWN else "")
    text = f"{corpus}: {len(missing):,} of {len(expected):,} listed file(s) missing under {folder}: {shown}"
    if not present:
        raise NoisemixError(f"{text}; is {folder} the {corpus} folder?")
    return present, partial_copy(text, allow_partial, f"complete the copy, or set allow_partial = true for {corpus} "
                                 f"(recipe [corpora] table or --corpus-option {corpus}.allow_partial=true) "
                                 "knowing that results are then not comparable with the full benchmark")


def partial_copy(text: str, allow_partial: bool, remedy: str) -> list[str]:
    """The build-report note for an incomplete corpus; an error naming ``remedy`` unless allowed."""
    if not allow_partial:
        raise NoisemixError(f"{text}; {remedy}")
    return [PARTIAL_COPY + text]


def corpus_file(folder: Path, option: str) -> Path:
    """A file named by an option: absolute, or relative to the corpus folder (as recipes are shared)."""
    path = Path(option).expanduser()
    return path if path.is_absolute() else Path(folder) / path


def require_file(path: Path, corpus: str, layout: str) -> Path:
    if not path.is_file():
        raise NoisemixError(f"{path}: not found; {corpus} expects the layout {layout}")
    return path
