"""Scanning corpora into a sources table (see :data:`noisemix.schema.SOURCES_SCHEMA`).

A corpus is a folder of audio under a named root. Optional metadata files in the
scanned folder say more than file names can:

``tags.csv`` / ``tags.tsv`` (clean music)
    columns ``path`` (relative to the scanned folder), ``tags`` (``;``-separated),
    optional ``group`` and ``split``.
``groups.csv`` / ``groups.tsv`` (noise)
    columns ``path``, optional ``category``, ``group``, ``subcategory``, ``split``.

Without them: clean tags come from the first sub-folder name, noise categories from the
first sub-folder name when no category is given, and the group (the unit that never
straddles splits) is the file's folder, or the file itself when it sits at the top.

A public corpus in its published layout is read by a named adapter instead
(:mod:`noisemix.adapters`): the adapter lists the files and their metadata, and the
rest (checks, hashing, caching, duplicate detection) is the same as for a folder.
"""

from __future__ import annotations

import functools
import hashlib
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from . import rng
from . import schema as S
from .audio import decode, probe, sha256_file, to_mono, why_not_a_file
from .cache import cache_dir
from .energy import IndexRequest
from .errors import AudioError, NoisemixError
from .io import read_text_table, write_parquet

__all__ = ["CorpusInput", "ScanResult", "scan", "AUDIO_EXTENSIONS", "source_id"]

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff", ".au", ".w64", ".caf")
METADATA_FILES = {"clean": ("tags.csv", "tags.tsv"), "noise": ("groups.csv", "groups.tsv")}
MAX_CHANNELS = 2
# A noise recording shorter than this would be looped into a buzz or a constant, not noise.
MIN_NOISE_SECONDS = 0.1
_FILE_FIELDS = (S.SOURCE_FRAMES, S.SOURCE_SAMPLE_RATE, S.CHANNELS, S.SHA256, S.AUDIO_FINGERPRINT)


@dataclass(frozen=True)
class CorpusInput:
    """One folder to scan: ``root_path / subdir`` with paths stored relative to the root."""

    root_name: str
    root_path: Path
    role: str
    category: str = ""      # noise: fixed category; '' = first sub-folder name
    subdir: str = ""
    adapter: str = ""       # name in noisemix.adapters.ADAPTERS; '' = plain folder scan
    options: tuple = ()     # adapter options as sorted (name, value) pairs

    @property
    def folder(self) -> Path:
        return Path(self.root_path) / self.subdir


@dataclass
class ScanResult:
    sources: pd.DataFrame
    problems: list[str]      # one line per skipped file
    notes: list[str]         # resampled rates, duplicates, cache use


def source_id(root: str, path: str) -> str:
    return f"{rng.stable_key('source', root, path):016x}"


def scan(inputs: list[CorpusInput], on_error: str = "fail", workers: int = 1,
         progress: bool = True, use_cache: bool = True, index: IndexRequest | None = None) -> ScanResult:
    """Scan every input folder; return the sources table sorted by source id.

    With ``index``, files read for the first time also get that energy index (a build's),
    so a first build decodes each file once instead of twice.
    """
    frames, problems, notes = [], [], []
    for item in inputs:
        if not item.folder.is_dir():
            raise NoisemixError(f"{item.folder}: {item.role} folder not found")
        listing, listing_notes, unlisted = _listing(item)
        notes += listing_notes
        if listing.empty and not unlisted:
            raise NoisemixError(f"{item.folder}: no audio files ({', '.join(AUDIO_EXTENSIONS)})")
        details, bad = (_file_details(item, listing["_rel"].tolist(), workers, progress, use_cache, index)
                        if not listing.empty else (None, []))
        for line in unlisted + bad:
            if on_error == "fail":
                raise AudioError(*line)
            problems.append(f"{line[0]}: {line[1]}")
        if details is not None:
            frames.append(listing.merge(details, on="_rel", how="inner").drop(columns="_rel"))
    if not frames or all(f.empty for f in frames):
        raise NoisemixError("no readable audio file in the inputs (every one was skipped; see the lines above)"
                            if problems else "no audio files in the inputs")
    sources = pd.concat(frames, ignore_index=True)
    sources = sources.sort_values(S.SOURCE_ID, kind="stable").reset_index(drop=True)
    notes += _notes(sources)
    return ScanResult(sources, problems, notes)


def _files_and_metadata(item: CorpusInput) -> tuple[list[str], dict[str, dict], list[str], list[tuple[str, str]]]:
    """Relative audio paths, their metadata, notes and the folders that could not be listed
    (path, problem): from the adapter, else folder + metadata file."""
    if item.adapter:
        from .adapters import get_adapter

        listing = get_adapter(item.adapter, item.role).listing(item.folder, dict(item.options))
        return listing.files, listing.meta, listing.notes, []
    folder = item.folder
    files, unreadable = [], []
    for dirpath, dirnames, filenames in os.walk(folder, onerror=unreadable.append):
        dirnames.sort()
        for name in sorted(filenames):
            if name.lower().endswith(AUDIO_EXTENSIONS) and not name.startswith("."):
                files.append(Path(dirpath, name).relative_to(folder).as_posix())
    unlisted = [(str(exc.filename or folder), f"folder not readable ({exc.strerror or exc}); its files were not "
                 f"listed") for exc in unreadable]
    return files, _metadata(item), [], unlisted


def _listing(item: CorpusInput) -> tuple[pd.DataFrame, list[str], list[tuple[str, str]]]:
    """Audio files below the folder with their role, category, tags, group and split; notes;
    unlisted folders."""
    folder = item.folder
    files, meta, notes, unlisted = _files_and_metadata(item)
    rows = []
    for rel in sorted(files):
        info = meta.get(rel, {})
        parts = rel.split("/")
        category = item.category or info.get("category") or (parts[0] if item.role == "noise" and len(parts) > 1 else "")
        if item.role == "noise" and category not in S.CATEGORIES:
            raise NoisemixError(
                f"{folder / rel}: noise category {category or '(none)'!r} is not one of {', '.join(S.CATEGORIES)}; "
                f"give --noise CATEGORY=PATH or put files under {'/'.join(S.CATEGORIES)} sub-folders")
        tags = info.get("tags")
        if tags is None:
            tags = [parts[0]] if item.role == "clean" and len(parts) > 1 else []
        stored = (Path(item.subdir) / rel).as_posix() if item.subdir else rel
        rows.append({
            S.SOURCE_ID: source_id(item.root_name, stored), S.ROOT: item.root_name, S.PATH: stored,
            S.ROLE: item.role, S.CATEGORY: category if item.role == "noise" else "",
            S.SUBCATEGORY: info.get("subcategory", ""), S.TAGS: tags,
            S.GROUP: info.get("group") or (f"{item.root_name}/{'/'.join(parts[:-1])}" if len(parts) > 1 else f"{item.root_name}/{rel}"),
            S.SPLIT: info.get("split", ""), "_rel": rel,
        })
    listing = pd.DataFrame(rows, columns=list(rows[0]) if rows else [S.PATH, "_rel"])
    if rows:
        bad_split = ~listing[S.SPLIT].isin(("",) + S.SPLITS)
        if bad_split.any():
            raise NoisemixError(f"{folder}: split {listing[S.SPLIT][bad_split].iloc[0]!r} in metadata is not one of {', '.join(S.SPLITS)}")
    return listing, notes, unlisted


def _metadata(item: CorpusInput) -> dict[str, dict]:
    for name in METADATA_FILES[item.role]:
        path = item.folder / name
        if path.is_file():
            return _read_metadata(path, item.role)
    return {}


def _read_metadata(path: Path, role: str) -> dict[str, dict]:
    table = read_text_table(path)
    if "path" not in table.columns:
        raise NoisemixError(f"{path}: needs a 'path' column (found: {', '.join(table.columns)})")
    meta = {}
    for record in table.to_dict("records"):
        entry = {k: v.strip() for k, v in record.items() if k != "path" and k != "tags" and v.strip()}
        if role == "clean" and "tags" in record:
            entry["tags"] = S.tags_from_text(record["tags"])
        meta[Path(record["path"]).as_posix()] = entry
    return meta


def _file_details(item: CorpusInput, relpaths: list[str], workers: int, progress: bool,
                  use_cache: bool, index: IndexRequest | None) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """Header, hashes and fingerprint per file, from the scan cache when unchanged."""
    folder = item.folder
    stats, bad = {}, []
    for rel in relpaths:
        try:
            stats[rel] = os.stat(folder / rel)
        except OSError:  # a dangling symbolic link or a loop: listed, but no file behind it
            bad.append((str(folder / rel), why_not_a_file(folder / rel)))
    relpaths = [rel for rel in relpaths if rel in stats]
    cache_file = cache_dir() / "scan" / f"{rng.stable_key(str(folder.resolve())):016x}.parquet"
    cached = _load_cache(cache_file) if use_cache else {}
    todo = [rel for rel in relpaths if cached.get(rel, {}).get("_stamp") != _stamp(stats[rel])]
    examine = examine_file if index is None else functools.partial(examine_file, index=index)
    for rel, result in _map(examine, [str(folder / rel) for rel in todo], workers, progress, f"scan {item.root_name}", todo):
        if isinstance(result, str):
            bad.append((str(folder / rel), result))
        else:
            cached[rel] = dict(result, _stamp=_stamp(stats[rel]))
    if item.role == "noise":
        for rel in relpaths:
            entry = cached.get(rel)
            if entry and entry[S.SOURCE_FRAMES] < MIN_NOISE_SECONDS * entry[S.SOURCE_SAMPLE_RATE]:
                bad.append((str(folder / rel), f"too short for noise: {entry[S.SOURCE_FRAMES]} sample(s) at "
                            f"{entry[S.SOURCE_SAMPLE_RATE]} Hz (at least {MIN_NOISE_SECONDS} s; it would loop into a "
                            f"tone or a constant)"))
    failed = {Path(p).relative_to(folder).as_posix() for p, _ in bad}
    rows = [dict(cached[rel], _rel=rel) for rel in relpaths if rel in cached and rel not in failed]
    if use_cache and todo:
        _save_cache(cache_file, cached)
    details = pd.DataFrame(rows, columns=["_rel", *_FILE_FIELDS, "_stamp"])
    details[S.DURATION_S] = details[S.SOURCE_FRAMES] / details[S.SOURCE_SAMPLE_RATE].where(details[S.SOURCE_SAMPLE_RATE] > 0, 1)
    return details.drop(columns="_stamp"), bad


def _stamp(stat: os.stat_result) -> str:
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def examine_file(path: str, index: IndexRequest | None = None) -> dict | str:
    """Everything the sources table needs about one file, or the problem as text
    (and, with ``index``, the file's energy index stored in the index cache)."""
    try:
        info = probe(Path(path))
        if info.channels > MAX_CHANNELS:
            return f"unsupported channel layout: {info.channels} channels (mono or stereo expected)"
        data, rate = decode(Path(path))
        if not np.any(np.abs(data) > 10 ** (-90 / 20)):
            return "all samples are silent"
        pcm = np.clip(np.rint(data.astype(np.float64) * 32768.0), -32768, 32767).astype("<i2")
        sha = sha256_file(Path(path))
        if index is not None and not index.path(sha).is_file():
            index.store(sha, to_mono(data, rate, index.sample_rate))
        return {S.SOURCE_FRAMES: int(data.shape[0]), S.SOURCE_SAMPLE_RATE: int(rate), S.CHANNELS: int(data.shape[1]),
                S.SHA256: sha, S.AUDIO_FINGERPRINT: "pcm16:" + hashlib.sha256(pcm.tobytes()).hexdigest()}
    except AudioError as exc:
        return exc.problem
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})"


def _map(function, items: list, workers: int, progress: bool, label: str, keys: list):
    """``(key, function(item))`` in input order, in a process pool when workers > 1."""
    from tqdm import tqdm

    bar = tqdm(total=len(items), desc=label, unit="file", disable=not progress or not items, leave=False)
    try:
        if workers > 1 and len(items) > 1:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                for key, result in zip(keys, pool.map(function, items, chunksize=4)):
                    bar.update()
                    yield key, result
        else:
            for key, item in zip(keys, items):
                yield key, function(item)
                bar.update()
    finally:
        bar.close()


def _load_cache(path: Path) -> dict[str, dict]:
    if not path.is_file():
        return {}
    try:
        table = pd.read_parquet(path)
    except (OSError, ValueError, pa.ArrowInvalid):
        return {}  # an unreadable cache is only a slower scan
    if set(_FILE_FIELDS) - set(table.columns):
        return {}  # written by a noisemix that named its fields otherwise: scan again
    return {row.pop("_rel"): row for row in table.to_dict("records")}


def _save_cache(path: Path, cached: dict[str, dict]) -> None:
    rows = [dict(v, _rel=k) for k, v in sorted(cached.items())]
    write_parquet(pa.Table.from_pylist(rows), path)


def _notes(sources: pd.DataFrame) -> list[str]:
    notes = []
    for rate, count in sources[S.SOURCE_SAMPLE_RATE].value_counts().sort_index().items():
        notes.append(f"{count} file(s) at {rate} Hz")
    duplicated = sources[sources.duplicated(S.SHA256, keep=False)]
    for sha, group in duplicated.groupby(S.SHA256, sort=True):
        names = ", ".join(f"{r}:{p}" for r, p in zip(group[S.ROOT], group[S.PATH]))
        notes.append(f"duplicate files (same sha256 {sha[:12]}): {names}")
    return notes
