"""The values of a manifest's rows, checked when it is loaded, before any audio is touched.

A manifest is data someone else may have written or edited: a NaN gain would render
silence, an infinite one full-scale noise, and an offset beyond its source would crash a
render or a training run deep inside. Every check here is vectorised (a million rows in
well under a second, ``benchmarks/bench_validate.py``) and a failure is one line naming
the file, the first offending mixture (or source), the column and the value, and how many
rows share the problem.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from . import schema as S

__all__ = ["validate_rows", "frames_at_rate"]


def frames_at_rate(frames: np.ndarray, source_rate: np.ndarray, rate: int) -> np.ndarray:
    """Length of a source decoded and resampled to ``rate``: soxr's output length, the
    input length scaled and rounded half up (exact where the rates agree)."""
    frames = np.asarray(frames, dtype=np.int64)
    source_rate = np.asarray(source_rate, dtype=np.int64)
    return np.where(source_rate == rate, frames, (2 * frames * rate + source_rate) // (2 * np.maximum(source_rate, 1)))


def validate_rows(sources: pd.DataFrame, mixtures: pd.DataFrame, info: dict, directory: Path,
                  table=None) -> None:
    """Raise :class:`~noisemix.schema.ManifestError` at the first kind of bad value found.
    ``table``: the mixtures as read (arrow; lists and ids are checked there, in C++), else
    made from ``mixtures``."""
    import pyarrow as pa

    if table is None:
        columns = [S.TAGS, S.CLEAN_SOURCE_ID, S.NOISE_SOURCE_ID, S.NOISE_NEXT_IDS]
        table = pa.Table.from_pandas(mixtures[columns], preserve_index=False)
    where_sources, where = Path(directory) / S.SOURCES_FILE, Path(directory) / S.MIXTURES_FILE
    _refuse(where_sources, "source", sources[S.SOURCE_ID], sources[S.SOURCE_SAMPLE_RATE].to_numpy() <= 0,
            S.SOURCE_SAMPLE_RATE, sources[S.SOURCE_SAMPLE_RATE], "is not a sample rate > 0")
    _refuse(where_sources, "source", sources[S.SOURCE_ID], sources[S.SOURCE_FRAMES].to_numpy() < 0, S.SOURCE_FRAMES,
            sources[S.SOURCE_FRAMES], "is negative")
    ids = mixtures[S.MIXTURE_ID]
    rate = mixtures[S.SAMPLE_RATE].to_numpy()
    _refuse(where, "mixture", ids, rate <= 0, S.SAMPLE_RATE, mixtures[S.SAMPLE_RATE], "is not a sample rate > 0")
    for column in (S.CLEAN_GAIN, S.NOISE_GAIN):
        gain = mixtures[column].to_numpy(dtype=np.float64)
        _refuse(where, "mixture", ids, ~(np.isfinite(gain) & (gain >= 0)), column, mixtures[column],
                "is not a finite gain >= 0")
    noisy = mixtures[S.NOISE_SOURCE_ID].to_numpy() != ""
    snr = mixtures[S.SNR_DB].to_numpy(dtype=np.float64)
    _refuse(where, "mixture", ids, noisy & ~np.isfinite(snr), S.SNR_DB, mixtures[S.SNR_DB],
            "is not a finite SNR (only clean reference rows have none)")
    known = set(S.CATEGORIES) | {""}
    _refuse(where, "mixture", ids, ~mixtures[S.NOISE_CATEGORY].isin(known).to_numpy(), S.NOISE_CATEGORY,
            mixtures[S.NOISE_CATEGORY], f"is not one of {', '.join(S.CATEGORIES)} (or '' for a clean row)")
    _check_transforms(mixtures, where)
    _check_tags(mixtures, table.column(S.TAGS), info.get(S.INFO_TAGS), where)
    _check_extents(sources, mixtures, table, noisy, where)


def _check_extents(sources: pd.DataFrame, mixtures: pd.DataFrame, table, noisy: np.ndarray, where: Path) -> None:
    """Every segment inside its source at the manifest's rate (looped noise: its start)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    ids = mixtures[S.MIXTURE_ID]
    source_ids = pa.array(sources[S.SOURCE_ID].astype(str).tolist(), pa.string())
    rate = mixtures[S.SAMPLE_RATE].to_numpy()
    length = mixtures[S.NUM_FRAMES].to_numpy()
    _refuse(where, "mixture", ids, length <= 0, S.NUM_FRAMES, mixtures[S.NUM_FRAMES], "is not a length > 0")
    for offset_column, source_column, rows in ((S.CLEAN_OFFSET, S.CLEAN_SOURCE_ID, np.ones(len(ids), bool)),
                                               (S.NOISE_OFFSET, S.NOISE_SOURCE_ID, noisy)):
        offset = mixtures[offset_column].to_numpy()
        _refuse(where, "mixture", ids, rows & (offset < 0), offset_column, mixtures[offset_column], "is negative")
        position = pc.index_in(table.column(source_column), value_set=source_ids).fill_null(-1).to_numpy()
        known = rows & (position >= 0)  # unknown ids are refused by the loader, naming the id
        frames = np.zeros(len(ids), np.int64)
        frames[known] = frames_at_rate(sources[S.SOURCE_FRAMES].to_numpy()[position[known]],
                                       sources[S.SOURCE_SAMPLE_RATE].to_numpy()[position[known]], rate[known])
        if source_column == S.NOISE_SOURCE_ID:  # a looped noise or a sequence only needs to start inside
            following = pc.list_value_length(table.column(S.NOISE_NEXT_IDS)).fill_null(0).to_numpy()
            wraps = mixtures[S.NOISE_LOOPED].to_numpy() | (following > 0)
            end = np.where(wraps, offset + 1, offset + length)
        else:
            end = offset + length
        _refuse(where, "mixture", ids, known & (end > frames), offset_column, mixtures[offset_column],
                f"with {S.NUM_FRAMES} runs past the end of its source ({source_column})")


def _check_transforms(mixtures: pd.DataFrame, where: Path) -> None:
    """Each distinct stored transform list once (most rows share ``[]``)."""
    from .errors import SpecError
    from .transforms import check_json

    for column in (S.NOISE_TRANSFORMS, S.MIXTURE_TRANSFORMS):
        for text in pd.unique(mixtures[column]):
            try:
                check_json(text)
            except SpecError as exc:
                bad = (mixtures[column] == text).to_numpy()
                _refuse(where, "mixture", mixtures[S.MIXTURE_ID], bad, column, mixtures[column].str.slice(0, 80),
                        f"is refused: {exc}")


def _check_tags(mixtures: pd.DataFrame, tags, vocabulary, where: Path) -> None:
    """``tags``: the mixtures' tags as an arrow list column (checked flat, without a Python loop)."""
    if not vocabulary or tags is None:
        return
    import pyarrow as pa
    import pyarrow.compute as pc

    column = tags.combine_chunks() if isinstance(tags, pa.ChunkedArray) else tags
    unknown = pc.invert(pc.is_in(column.flatten(), value_set=pa.array(list(vocabulary), pa.string())))
    unknown = unknown.to_numpy(zero_copy_only=False)
    if unknown.any():
        bad = np.zeros(len(mixtures), bool)
        bad[pc.list_parent_indices(column).to_numpy()[unknown]] = True
        first_tag = column.flatten().to_numpy(zero_copy_only=False)[unknown][0]
        _refuse(where, "mixture", mixtures[S.MIXTURE_ID], bad, S.TAGS, mixtures[S.TAGS],
                f"holds a tag outside the vocabulary of {S.INFO_FILE} ({first_tag!r})")


def _refuse(where: Path, what: str, ids: pd.Series, bad: np.ndarray, column: str, values: pd.Series,
            problem: str) -> None:
    if not bad.any():
        return
    first = int(np.flatnonzero(bad)[0])
    more = int(bad.sum()) - 1
    value = values.iloc[first]
    value = value.item() if isinstance(value, np.generic) else value  # 'nan', not 'np.float64(nan)'
    raise S.ManifestError(f"{where}: {what} {ids.iloc[first]}: {column} {value!r} {problem}"
                          + (f" (and {more} more row(s))" if more else ""))


def validate_table(table: pa.Table, schema: pa.Schema, where: str) -> pa.Table:
    """Check ``table`` against ``schema`` and return it with columns in schema order.

    Extra columns are kept after the schema's columns. A missing column or a column of
    another type raises :class:`ManifestError` naming ``where`` and the column.
    """
    missing = [f.name for f in schema if f.name not in table.column_names]
    if missing:
        raise S.ManifestError(f"{where}: missing column(s) {', '.join(missing)}")
    columns, fields = [], []
    for field in schema:
        column = table.column(field.name)
        if column.type != field.type:
            try:
                column = column.cast(field.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise S.ManifestError(
                    f"{where}: column {field.name} has type {column.type}, expected {field.type}"
                ) from exc
        if not field.nullable and column.null_count:
            raise S.ManifestError(f"{where}: column {field.name} has {column.null_count} empty value(s)")
        columns.append(column)
        fields.append(field)
    for name in table.column_names:
        if name not in schema.names:
            columns.append(table.column(name))
            fields.append(table.schema.field(name))
    return pa.Table.from_arrays(columns, schema=pa.schema(fields))
