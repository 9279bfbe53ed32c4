"""Atomic writes: a file either has its complete new content or is untouched."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["atomic_path", "write_bytes", "write_parquet", "write_json", "write_text", "read_text_table"]


@contextlib.contextmanager
def atomic_path(target: Path, keep_suffix: bool = False):
    """Yield a temporary path beside ``target``; rename it over ``target`` on success.
    ``keep_suffix``: the temporary name ends as ``target`` does (``.jsonl.gz``), for writers
    that choose the format from the name."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    suffix = ".tmp" + ("".join(target.suffixes) if keep_suffix else "")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        # mkstemp makes private files; outputs get the usual permissions (0666 less umask).
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_bytes(data, target: Path) -> None:
    """Atomically write ``data`` (bytes, or a list of buffers written one after another)
    to ``target``, whose folder exists: the fast path for many files.

    One create (permissions 0666 less umask), the writes and one rename: a third of the
    system calls of :func:`atomic_path`, which matters when rendering thousands of clips.
    """
    tmp = f"{os.path.dirname(target)}/.{os.path.basename(target)}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    try:
        with os.fdopen(fd, "wb", closefd=True) as handle:
            for chunk in [data] if isinstance(data, (bytes, bytearray, memoryview)) else data:
                handle.write(chunk)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_parquet(table: pa.Table, target: Path) -> None:
    # Fixed writer options so identical tables give identical bytes.
    with atomic_path(target) as tmp:
        pq.write_table(table, tmp, compression="zstd", use_dictionary=True, write_statistics=False,
                       store_schema=True)


def write_json(data, target: Path) -> None:
    """Atomically write ``data`` as JSON (sorted keys, indented, no NaN) to ``target``."""
    write_text(json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n", target)


def write_text(text: str, target: Path) -> None:
    """Atomically write ``text`` (UTF-8) to ``target``, creating its folder."""
    with atomic_path(target) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")


def read_text_table(path: Path, sep: str | None = None, hint: str = ""):
    """A CSV file (TSV by its suffix, unless ``sep`` is given) as text columns.

    A file pandas cannot parse is a one-line :class:`NoisemixError` naming it, plus ``hint``.
    """
    import pandas as pd

    from .errors import NoisemixError

    sep = sep or ("\t" if Path(path).suffix == ".tsv" else ",")
    try:
        return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, OSError) as exc:
        raise NoisemixError(f"{path}: unreadable table ({exc}){hint}") from None
