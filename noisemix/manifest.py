"""Reading and writing manifest directories (see :mod:`noisemix.schema`)."""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from . import schema as S
from .roots import check_relative_path, resolve
from .io import write_json, write_parquet
from .validate import validate_rows, validate_table

__all__ = ["Manifest", "load_manifest", "read_info", "read_table", "write_manifest", "frame_to_table", "table_fingerprint",
           "fingerprint_differences"]


@dataclass
class Manifest:
    """A loaded manifest: two pandas tables, the build info and where the roots are.

    Treat the tables as read-only: source look-ups are indexed once, on first use.
    """

    directory: Path
    info: dict
    sources: pd.DataFrame       # indexed by source_id
    mixtures: pd.DataFrame      # one row per mixture, in manifest order
    roots: dict[str, Path] = field(default_factory=dict)

    @property
    def spec(self) -> dict:
        """The fully resolved build spec, as recorded (``noisemix.spec.BuildSpec.to_dict``)."""
        return self.info.get(S.INFO_SPEC, {})

    @property
    def sample_rate(self) -> int:
        return int(self.spec["sample_rate"])

    @property
    def seed(self) -> int:
        return int(self.info.get(S.INFO_SEED, 0))

    @property
    def fingerprints(self) -> dict[str, str]:
        """The recorded fingerprints of the tables (keys ``S.FINGERPRINT_SOURCES``/``MIXTURES``)."""
        return dict(self.info.get(S.INFO_FINGERPRINTS, {}))

    @property
    def tags(self) -> list[str]:
        """The tag vocabulary in its canonical order (the trainer's label order)."""
        return list(self.info.get(S.INFO_TAGS) or [])

    def source_path(self, source_id: str) -> Path:
        root, path, _ = self._source_records[source_id]
        return resolve(self.roots, root, path, where=f"source {source_id}")

    def source_sha256(self, source_id: str) -> str:
        return self._source_records[source_id][2]

    @functools.cached_property
    def _source_records(self) -> dict[str, tuple[str, str, str]]:
        # A pandas row look-up per source costs more than decoding a short clip.
        columns = (self.sources[S.ROOT], self.sources[S.PATH], self.sources[S.SHA256])
        return dict(zip(self.sources.index, zip(*columns)))

    def split_rows(self, split: str) -> pd.DataFrame:
        """The mixture rows of one split (train, valid or test), in manifest order."""
        return self.mixtures[self.mixtures[S.SPLIT] == split]

    def split(self, name: str) -> pd.DataFrame:
        """Deprecated name of :meth:`split_rows` (it selects rows; it never splits anything)."""
        import warnings

        warnings.warn("Manifest.split(name) is now Manifest.split_rows(name)", DeprecationWarning, stacklevel=2)
        return self.split_rows(name)


def select_fold(manifest: Manifest, fold: int) -> Manifest:
    """The manifest of a ``--folds K`` build with fold ``fold`` as its test split, the next
    fold (mod K) as validation and the others as training (every clip and every noise
    recording stays in its fold, so no group meets another split)."""
    folds = manifest.spec.get("folds")
    if not folds:
        raise S.ManifestError(f"{manifest.directory}: built without folds (noisemix build --folds K); "
                              f"it has one fixed split")
    if not 0 <= fold < folds:
        raise S.ManifestError(f"fold {fold}: {manifest.directory} has folds 0..{folds - 1}")
    split = fold_split(manifest.mixtures[S.FOLD].to_numpy(), folds, fold)
    return replace(manifest, mixtures=manifest.mixtures.assign(**{S.SPLIT: split}))


def fold_split(fold, folds: int, test_fold: int = 0) -> np.ndarray:
    """The split of each ``fold`` when ``test_fold`` is tested: the next fold validates, the rest train."""
    fold = np.asarray(fold)
    return np.where(fold == test_fold, "test", np.where(fold == (test_fold + 1) % folds, "valid", "train"))


def read_info(directory: Path) -> dict:
    """Read and check ``manifest.json`` of a manifest directory."""
    info_path = Path(directory) / S.INFO_FILE
    if not info_path.is_file():
        raise S.ManifestError(f"{info_path}: not found (is {directory} a noisemix manifest directory?)")
    try:
        info = json.loads(info_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise S.ManifestError(f"{info_path}: unreadable JSON ({exc})") from exc
    if not isinstance(info, dict):
        raise S.ManifestError(f"{info_path}: expected a JSON object")
    missing = [k for k in S.INFO_KEYS if k not in info]
    if missing:
        raise S.ManifestError(f"{info_path}: missing key(s) {', '.join(missing)}")
    version = info[S.INFO_SCHEMA_VERSION]
    if not isinstance(version, int) or version < 1:
        raise S.ManifestError(f"{info_path}: schema_version {version!r} is not a positive integer")
    if version > S.SCHEMA_VERSION:
        raise S.ManifestError(
            f"{info_path}: schema version {version} is newer than this noisemix supports "
            f"({S.SCHEMA_VERSION}); upgrade noisemix"
        )
    return info


def read_table(path: Path, table_schema: pa.Schema, defaults: dict | None = None,
               renames: dict | None = None) -> pa.Table:
    """A parquet table checked against ``table_schema``; ``defaults`` fills columns that
    tables written by an earlier version lack (name -> the value of every row), ``renames``
    gives columns an earlier schema version named otherwise their names now (old -> new)."""
    if not path.is_file():
        raise S.ManifestError(f"{path}: not found")
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise S.ManifestError(f"{path}: not a readable parquet file ({exc})") from None
    renames = {old: new for old, new in (renames or {}).items() if old in table.column_names}
    if renames:
        table = table.rename_columns([renames.get(name, name) for name in table.column_names])
    for name, value in (defaults or {}).items():
        if name not in table.column_names:
            table = table.append_column(name, pa.array([value] * len(table), table_schema.field(name).type))
    return validate_table(table, table_schema, str(path))


def load_manifest(directory, roots: dict[str, Path] | None = None) -> Manifest:
    """Load a manifest directory into pandas.

    ``roots`` maps root names to folders on this machine; names not given resolve to the
    folders recorded at build time. Every path in ``sources.parquet`` is checked to be
    relative and inside its root.
    """
    directory = Path(directory)
    info = read_info(directory)
    sources = read_table(directory / S.SOURCES_FILE, S.SOURCES_SCHEMA,
                         renames=S.source_renames(info[S.INFO_SCHEMA_VERSION])).to_pandas()
    mixtures_path = directory / S.MIXTURES_FILE
    mixtures_table = S.with_optional_columns(read_table(mixtures_path, S.MIXTURES_SCHEMA), str(mixtures_path))
    mixtures = mixtures_table.to_pandas()
    for source_id, path in zip(sources[S.SOURCE_ID], sources[S.PATH]):
        check_relative_path(path, f"{directory / S.SOURCES_FILE} (source {source_id})")
    if sources[S.SOURCE_ID].duplicated().any():
        raise S.ManifestError(f"{directory / S.SOURCES_FILE}: duplicate source ids")
    known = set(sources[S.SOURCE_ID])
    used = (set(mixtures[S.CLEAN_SOURCE_ID]) | (set(mixtures[S.NOISE_SOURCE_ID]) - {""})
            | {i for ids in mixtures[S.NOISE_NEXT_IDS] for i in ids})
    if used - known:
        raise S.ManifestError(
            f"{directory / S.MIXTURES_FILE}: {len(used - known)} source id(s) not in sources.parquet, "
            f"e.g. {sorted(used - known)[0]}"
        )
    _check_mixture_names(mixtures, directory / S.MIXTURES_FILE)
    validate_rows(sources, mixtures, info, directory, mixtures_table)
    merged_roots = {name: Path(p) for name, p in info.get(S.INFO_ROOTS, {}).items()}
    merged_roots.update(roots or {})
    sources[S.TAGS] = sources[S.TAGS].map(list)
    for column in (S.TAGS, S.NOISE_NEXT_IDS):
        mixtures[column] = mixtures[column].map(list)
    return Manifest(directory, info, sources.set_index(S.SOURCE_ID, drop=False), mixtures, merged_roots)


def _check_mixture_names(mixtures: pd.DataFrame, where: Path) -> None:
    """Split and mixture id name rendered files (SPLIT/ID.flac): they must stay plain names."""
    unknown = sorted(set(mixtures[S.SPLIT]) - set(S.SPLITS))
    if unknown:
        raise S.ManifestError(f"{where}: split {unknown[0]!r} is not one of {', '.join(S.SPLITS)}")
    unsafe = ~mixtures[S.MIXTURE_ID].str.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*")
    if unsafe.any():
        raise S.ManifestError(f"{where}: mixture id {mixtures[S.MIXTURE_ID][unsafe].iloc[0]!r} is not a plain file name")
    repeated = mixtures[S.MIXTURE_ID][mixtures[S.MIXTURE_ID].duplicated()]
    if len(repeated):
        raise S.ManifestError(f"{where}: duplicate mixture id {repeated.iloc[0]!r}")


def table_fingerprint(table: pa.Table) -> str:
    """sha256 over a table's content (column names, types and values), not its file bytes.

    Parquet files carry the writer's version, so equal content is checked this way. A list
    type is named as arrow names it (``list<item: ...>``) however the file names its values
    (parquet says ``element``), so a table read back fingerprints as it was built.
    """
    digest = hashlib.sha256()
    for name in table.column_names:
        column = table.column(name).combine_chunks()
        kind = pa.list_(column.type.value_type) if pa.types.is_list(column.type) else column.type
        digest.update(f"{S.FINGERPRINT_NAMES.get(name, name)}:{kind}\n".encode())
        if pa.types.is_list(column.type):
            digest.update(np.asarray(column.value_lengths().fill_null(0), dtype="<i8").tobytes())
            column = column.flatten()
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            digest.update("\x00".join(column.to_pylist()).encode())
        else:
            values = column.to_numpy(zero_copy_only=False)
            digest.update(np.ascontiguousarray(values.astype(values.dtype.newbyteorder("<"))).tobytes())
    return digest.hexdigest()


def fingerprint_differences(directory) -> list[str]:
    """One line per table of a manifest whose content no longer has the fingerprint that
    ``manifest.json`` records (rows edited after the build, or the record itself changed)."""
    directory = Path(directory)
    info = read_info(directory)
    recorded = info.get(S.INFO_FINGERPRINTS, {})
    lines = []
    for name, file, table_schema in ((S.FINGERPRINT_SOURCES, S.SOURCES_FILE, S.SOURCES_SCHEMA),
                                     (S.FINGERPRINT_MIXTURES, S.MIXTURES_FILE, S.MIXTURES_SCHEMA)):
        renames = S.source_renames(info[S.INFO_SCHEMA_VERSION]) if name == S.FINGERPRINT_SOURCES else {}
        table = read_table(directory / file, table_schema, renames=renames)
        if name == S.FINGERPRINT_MIXTURES:  # fingerprinted as written: optional columns only where used
            table, _ = S.without_unused_optional_columns(S.with_optional_columns(table, str(directory / file)))
        computed = table_fingerprint(table)
        if recorded.get(name) != computed:
            lines.append(f"{directory / file}: its content does not match the {name} fingerprint in "
                         f"{S.INFO_FILE} (recorded {str(recorded.get(name))[:16]}, computed {computed[:16]}): "
                         f"the rows were changed after the build, or the record was")
    return lines


def frame_to_table(frame: pd.DataFrame, table_schema: pa.Schema) -> pa.Table:
    """A DataFrame to a table of ``table_schema``, keeping NaN as NaN (not as null)."""
    arrays = []
    for column in table_schema:
        values = frame[column.name]
        values = list(values) if pa.types.is_list(column.type) else values.to_numpy()
        arrays.append(pa.array(values, type=column.type, from_pandas=False))
    return pa.Table.from_arrays(arrays, schema=table_schema)


def write_manifest(directory: Path, sources: pa.Table, mixtures: pa.Table, info: dict) -> dict:
    """Write the three files atomically (manifest.json last, so it marks completeness)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    sources = validate_table(sources, S.SOURCES_SCHEMA, "sources")
    mixtures = validate_table(mixtures, S.MIXTURES_SCHEMA, "mixtures")
    mixtures, version = S.without_unused_optional_columns(mixtures)
    info = dict(info)
    info[S.INFO_SCHEMA_VERSION] = version
    info[S.INFO_FINGERPRINTS] = {**info.get(S.INFO_FINGERPRINTS, {}), S.FINGERPRINT_SOURCES: table_fingerprint(sources),
                                 S.FINGERPRINT_MIXTURES: table_fingerprint(mixtures)}
    (directory / S.INFO_FILE).unlink(missing_ok=True)
    write_parquet(sources, directory / S.SOURCES_FILE)
    write_parquet(mixtures, directory / S.MIXTURES_FILE)
    write_json(info, directory / S.INFO_FILE)
    return info
