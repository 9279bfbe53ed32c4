"""From scanned sources and a build spec to mixture rows (no audio is written here).

Every random choice of a mixture is drawn by :mod:`noisemix.rng` from the seed and the
mixture's stable key, so rows do not depend on file order, worker count or platform.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import dsp, rng, transforms
from . import schema as S
from .audio import DecodedCache, resampler_name
from .cache import cache_dir, decoded_dir
from .energy import IndexRequest, SourceIndex, block_size_for, segment_energies, source_index
from .errors import AudioError, NoisemixError
from .manifest import fold_split, frame_to_table, write_manifest
from .roots import resolve
from .adapters import vocabulary as adapter_vocabulary
from .sources import CorpusInput, scan
from .spec import BuildSpec

__all__ = ["build_manifest", "assign_splits", "assign_folds", "plan_mixtures", "BuildReport"]

# Streams of draws per mixture key: one name, one number, so adding a draw never shifts others.
STREAM = {"category": 1, "snr": 2, "noise": 3, "offset": 4, "sequence": 5}
REDRAW_STREAM_STEP = 16


@dataclass
class BuildReport:
    skipped_files: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)

    def to_dict(self) -> dict:
        return {"skipped_files": self.skipped_files, "notes": self.notes, "counts": dict(sorted(self.counts.items()))}


def build_manifest(inputs: list[CorpusInput], spec: BuildSpec, out: Path, *, on_error: str = "fail",
                   workers: int = 1, progress: bool = True, tags: list[str] | None = None,
                   recipe: dict | None = None) -> dict:
    """Scan ``inputs``, plan the mixtures of ``spec`` and write the manifest to ``out``.

    ``tags`` fixes the vocabulary order (default: the adapter's canonical order, e.g.
    MTAT's top 50, else sorted). ``recipe`` (the benchmark definition a build came from)
    is recorded in manifest.json under ``recipe``.
    """
    report = BuildReport()
    index_request = IndexRequest(spec.sample_rate, block_size_for(spec.segment_frames), cache_dir() / "index")
    scanned = scan(inputs, on_error=on_error, workers=workers, progress=progress, index=index_request)
    report.skipped_files += scanned.problems
    report.notes += scanned.notes
    sources = assign_splits(scanned.sources, spec.split_fractions)
    sources = _with_pools(sources, spec)
    roots = {item.root_name: Path(item.root_path).resolve() for item in inputs}
    audio = DecodedCache(spec.sample_rate, decoded_dir(), memory_mb=256)
    sources, index = _index_sources(sources, roots, index_request, on_error, progress, report)
    mixtures = plan_mixtures(sources, index, spec, roots, audio, report)
    vocabulary = tags if tags is not None else adapter_vocabulary(inputs) or sorted({t for ts in sources[S.TAGS] for t in ts})
    info = {
        S.INFO_TOOL_VERSION: _tool_version(), S.INFO_SPEC: spec.to_dict(), S.INFO_SEED: spec.seed,
        S.INFO_RESAMPLER: resampler_name(), S.INFO_ROOTS: {k: str(v) for k, v in sorted(roots.items())},
        S.INFO_FINGERPRINTS: {}, S.INFO_REPORT: report.to_dict(), S.INFO_TAGS: vocabulary,
    }
    if any(item.adapter for item in inputs):
        # Which adapter read each root: the card names corpora and licences from it.
        info[S.INFO_CORPORA] = {item.root_name: {"adapter": item.adapter, "role": item.role,
                                            "options": {k: list(v) if isinstance(v, tuple) else v for k, v in item.options}}
                           for item in sorted(inputs, key=lambda i: i.root_name)}
    if recipe is not None:
        info[S.INFO_RECIPE] = recipe
    used = (set(mixtures[S.CLEAN_SOURCE_ID]) | set(mixtures[S.NOISE_SOURCE_ID])
            | {i for ids in mixtures[S.NOISE_NEXT_IDS] for i in ids})
    used_sources = frame_to_table(sources[sources[S.SOURCE_ID].isin(used)], S.SOURCES_SCHEMA)
    info = write_manifest(out, used_sources, frame_to_table(mixtures, S.MIXTURES_FULL_SCHEMA), info)
    from .card import refresh_card

    refresh_card(out)  # a card of an earlier build in this folder describes this one now
    return info


def _tool_version() -> str:
    from . import __version__

    return __version__


def assign_splits(sources: pd.DataFrame, fractions) -> pd.DataFrame:
    """Fill empty splits group by group; refuse groups that straddle splits.

    Within each role and noise category, groups are ordered by a hash of their name and
    dealt out in proportion to ``fractions``, every split with a non-zero fraction getting
    at least one group where there are enough. The order depends on group names only,
    never on the seed or on file order.
    """
    sources = sources.copy()
    empty = sources[S.SPLIT] == ""
    for _, part in sources[empty].groupby([S.ROLE, S.CATEGORY], sort=True):
        groups = sorted(set(part[S.GROUP]), key=lambda g: (rng.stable_key("split", g), g))
        split_of = dict(zip(groups, np.repeat(S.SPLITS, _split_counts(len(groups), fractions))))
        sources.loc[part.index, S.SPLIT] = part[S.GROUP].map(split_of)
    per_group = sources.groupby([S.ROLE, S.GROUP])[S.SPLIT].nunique()
    leaking = per_group[per_group > 1]
    if len(leaking):
        role, group = leaking.index[0]
        raise NoisemixError(f"{role} group {group!r} is assigned to several splits; a group must stay in one split")
    return sources


def _with_pools(sources: pd.DataFrame, spec: BuildSpec) -> pd.DataFrame:
    """Sources with their fold and noise pool: the folds of ``--folds K``, else the splits."""
    return assign_folds(sources, spec.folds) if spec.folds else sources.assign(**{S.FOLD: -1, POOL: sources[S.SPLIT]})


def assign_folds(sources: pd.DataFrame, folds: int) -> pd.DataFrame:
    """Deal every group, within each role and noise category, to one of ``folds`` folds
    (ordered by a hash of the group name, round robin: the same group always lands in the
    same fold), and name each source's noise pool after its fold, so a clip only meets noise
    of its own fold. The split columns are fold 0's (test 0, valid 1, train the rest);
    ``noisemix.select_fold`` moves them to another fold."""
    sources = sources.copy()
    sources[S.FOLD] = -1
    for _, part in sources.groupby([S.ROLE, S.CATEGORY], sort=True):
        groups = sorted(set(part[S.GROUP]), key=lambda g: (rng.stable_key("split", g), g))
        if len(groups) < folds:
            raise NoisemixError(f"--folds {folds}: only {len(groups)} {part[S.ROLE].iloc[0]} group(s)"
                                f"{' of ' + part[S.CATEGORY].iloc[0] + ' noise' if part[S.CATEGORY].iloc[0] else ''}; "
                                f"every fold needs at least one")
        fold_of = {group: i % folds for i, group in enumerate(groups)}
        sources.loc[part.index, S.FOLD] = part[S.GROUP].map(fold_of)
    sources[S.SPLIT] = fold_split(sources[S.FOLD].to_numpy(), folds)
    return sources.assign(**{POOL: [f"fold {f}" for f in sources[S.FOLD]]})


def _split_counts(count: int, fractions) -> list[int]:
    counts = [int(np.floor(f * count)) for f in fractions]
    wanted = [i for i, f in enumerate(fractions) if f > 0]
    for i in wanted:
        if counts[i] == 0 and count >= len(wanted):
            counts[i] = 1
    while sum(counts) > count:
        counts[int(np.argmax(counts))] -= 1
    counts[int(np.argmax(fractions))] += count - sum(counts)
    return counts


def _index_sources(sources, roots, request: IndexRequest, on_error, progress, report):
    from tqdm import tqdm

    kept, parts = [], []
    for position, row in enumerate(tqdm(sources.itertuples(index=False), total=len(sources), desc="index",
                                        unit="file", disable=not progress, leave=False)):
        row = row._asdict()
        try:
            path = resolve(roots, row[S.ROOT], row[S.PATH])
            parts.append(source_index(path, row[S.SHA256], request))
            kept.append(position)
        except AudioError as exc:
            if on_error == "fail":
                raise
            report.skipped_files.append(str(exc))
    sources = sources.iloc[kept].reset_index(drop=True)
    return sources, SourceIndex.concatenate(request.block, parts)


@dataclass
class _Build:
    """What every planning step reads: the sources (a source's row number is its position
    in ``index``), their energy index, the spec, where the roots are, the decoded audio
    and the report that collects counts and notes."""

    sources: pd.DataFrame
    index: SourceIndex
    spec: BuildSpec
    roots: dict
    audio: DecodedCache
    report: BuildReport

    def source_audio(self, row) -> np.ndarray:
        """Decoded audio (at the build's rate) of the source in row ``row`` of ``sources``."""
        row = int(row)
        return self.audio.get(resolve(self.roots, self.sources[S.ROOT].iat[row], self.sources[S.PATH].iat[row]),
                              self.sources[S.SHA256].iat[row])

    def noise_samples(self, row, offset, length, looped, following=()) -> np.ndarray:
        """A noise segment as the kernel fills it (looped, or joined with ``following``)."""
        return dsp.fill_noise(self.source_audio(row), int(offset), int(length), bool(looped), self.spec.sample_rate,
                          self.spec.crossfade_s, [self.source_audio(r) for r in following])


# The planner's own columns (a manifest column keeps its schema name in the planning frames).
CLEAN_ROW = "clean_row"            # row of the clean source in ``sources``
SEGMENT = "segment"                # number of the segment within its clip
CLEAN_POWER = "clean_power"        # mean power of the clean segment (NaN until measured)
POOL = "pool"                      # noise pool of a source and of a mixture: its split, or its fold
SEGMENT_ROW = "segment_row"        # row of the segments frame a planned mixture mixes
ORDER = "order"                    # number of the mixture within its segment; -1: the clean reference
KEY = "key"                        # the mixture's stable key: every draw derives from it and the seed
GRID = "grid"                      # drawn by the grid design (names the mixture by its cell)
NOISE_ROW = "noise_row"            # row of the noise source in ``sources``; -1: none
NOISE_FOLLOWING = "noise_following"  # rows of the recordings joined after it (concat), a tuple
NOISE_POWER = "noise_power"        # mean power of the noise segment


def _segments(build: _Build) -> pd.DataFrame:
    """Clean segments: fixed, non-overlapping windows of each clean clip (NaN power if unaligned)."""
    sources, spec = build.sources, build.spec
    clean = np.flatnonzero((sources[S.ROLE] == "clean").to_numpy())
    frames = build.index.frames[clean]
    if spec.segment_frames is None:
        counts, lengths = np.ones_like(frames), frames
    else:
        counts, lengths = frames // spec.segment_frames, np.full_like(frames, spec.segment_frames)
        if spec.max_segments_per_clip:
            counts = np.minimum(counts, spec.max_segments_per_clip)
        build.report.counts["clean clips shorter than one segment"] += int(np.sum(counts == 0))
    row = np.repeat(clean, counts)
    number = np.concatenate([np.arange(c) for c in counts]) if len(counts) else np.zeros(0, np.int64)
    length = np.repeat(lengths, counts)
    segments = pd.DataFrame({CLEAN_ROW: row, SEGMENT: number, S.CLEAN_OFFSET: number * length,
                             S.NUM_FRAMES: length})
    segments[CLEAN_POWER] = build.index.power(row, segments[S.CLEAN_OFFSET].to_numpy(), length)
    return segments.assign(**{name: sources[name].to_numpy()[row] for name in (S.SPLIT, S.FOLD, POOL)},
                           **{S.CLEAN_SOURCE_ID: sources[S.SOURCE_ID].to_numpy()[row]})


def plan_mixtures(sources, index, spec, roots, audio, report) -> pd.DataFrame:
    """The mixture rows of ``spec`` as a DataFrame in MIXTURES_SCHEMA column order."""
    if POOL not in sources.columns:  # sources split by the caller (e.g. a benchmark)
        sources = _with_pools(sources, spec)
    build = _Build(sources, index, spec, roots, audio, report)
    segments = _segments(build)
    segments[CLEAN_POWER] = _fill_unaligned(segments, build)
    silent = dsp.power_db(segments[CLEAN_POWER].to_numpy()) < spec.silence_dbfs
    report.counts["silent clean segments skipped"] += int(silent.sum())
    segments = segments[~silent].reset_index(drop=True)
    rows = _draw_split_rows(segments, build)
    of_segment = rows[SEGMENT_ROW].to_numpy()
    rows = rows.assign(**{name: segments[name].to_numpy()[of_segment] for name in (
        S.CLEAN_SOURCE_ID, SEGMENT, S.SPLIT, S.FOLD, POOL, S.NUM_FRAMES, CLEAN_ROW, S.CLEAN_OFFSET)})
    rows = _choose_noise(rows, build)
    rows, reference_gain = _gains(rows, segments, build)
    if spec.clean_references:
        rows = pd.concat([rows, _clean_rows(segments, reference_gain)], ignore_index=True)
    rows = rows.sort_values([S.CLEAN_SOURCE_ID, SEGMENT, ORDER], kind="stable").reset_index(drop=True)
    return _to_schema(rows, build)


def _fill_unaligned(segments, build: _Build):
    power = segments[CLEAN_POWER].to_numpy().copy()
    for i in np.flatnonzero(np.isnan(power)):
        row = segments.iloc[i]
        offset = int(row[S.CLEAN_OFFSET])
        power[i] = dsp.power(build.source_audio(row[CLEAN_ROW])[offset:offset + int(row[S.NUM_FRAMES])])
    return power


def _draw_split_rows(segments: pd.DataFrame, build: _Build) -> pd.DataFrame:
    """Planned rows, each split drawn with its own spec when the spec has per-split options.

    Keys depend on the clean segment only, so splitting the draw changes no value.
    """
    spec = build.spec
    if not spec.splits:
        return _draw_rows(segments, np.arange(len(segments)), build.sources, spec)
    parts = [_draw_rows(segments.iloc[where], where, build.sources, spec.for_split(split))
             for split in S.SPLITS if len(where := np.flatnonzero((segments[S.SPLIT] == split).to_numpy()))]
    return (pd.concat(parts, ignore_index=True) if parts
            else _draw_rows(segments, np.arange(len(segments)), build.sources, spec))


def _draw_rows(segments: pd.DataFrame, seg_index: np.ndarray, sources: pd.DataFrame, spec: BuildSpec) -> pd.DataFrame:
    """One row per planned mixture with its key, category and target SNR (``seg_index``: the
    segments' rows in the whole segments frame; ``spec``: the split's own)."""
    present = sorted(set(sources.loc[sources[S.ROLE] == "noise", S.CATEGORY]))
    categories = [c for c in present if spec.category_weights.get(c, 1.0) > 0] if spec.category_weights else present
    if not categories:
        raise NoisemixError("no noise sources: give at least one --noise CATEGORY=PATH")
    base_keys = rng.stable_keys(f"{c}:{s}" for c, s in zip(segments[S.CLEAN_SOURCE_ID], segments[SEGMENT]))
    if spec.design == "grid":
        cells = [(c, level) for c in categories for level in spec.snr_for(c).levels_db]
        cell = np.tile(np.arange(len(cells)), len(segments))
        return pd.DataFrame({SEGMENT_ROW: np.repeat(seg_index, len(cells)), ORDER: cell,
                             KEY: _combine(np.repeat(base_keys, len(cells)), cell),
                             S.NOISE_CATEGORY: np.array([cells[i][0] for i in cell], dtype=object),
                             S.SNR_DB: np.array([cells[i][1] for i in cell], dtype=np.float64), GRID: True})
    number = np.tile(np.arange(spec.mixtures_per_segment), len(segments))
    keys = _combine(np.repeat(base_keys, spec.mixtures_per_segment), number)
    weights = [spec.category_weights.get(c, 1.0) for c in categories]
    category = np.array(categories, dtype=object)[rng.choice_index(spec.seed, keys, STREAM["category"], weights)]
    snr = np.empty(len(keys))
    for name in categories:
        mask = category == name
        snr[mask] = _draw_snr(spec.snr_for(name), spec.seed, keys[mask])
    return pd.DataFrame({SEGMENT_ROW: np.repeat(seg_index, spec.mixtures_per_segment), ORDER: number, KEY: keys,
                         S.NOISE_CATEGORY: category, S.SNR_DB: snr, GRID: False})


def _combine(keys: np.ndarray, numbers: np.ndarray) -> np.ndarray:
    return rng.mix_keys(keys, np.asarray(numbers, dtype=np.uint64))


def _draw_snr(snr_spec, seed, keys) -> np.ndarray:
    if snr_spec.is_grid:
        levels = np.array(snr_spec.levels_db)
        return levels[rng.integers(seed, keys, STREAM["snr"], len(levels))]
    return snr_spec.low_db + (snr_spec.high_db - snr_spec.low_db) * rng.uniform(seed, keys, STREAM["snr"])


def _choose_noise(rows, build: _Build) -> pd.DataFrame:
    """Noise source and offset per row; silent noise segments are redrawn."""
    spec, report = build.spec, build.report
    rows = rows.assign(**{NOISE_ROW: -1, S.NOISE_OFFSET: 0, S.NOISE_LOOPED: False, NOISE_POWER: np.nan,
                          NOISE_FOLLOWING: [()] * len(rows)})
    codes, pools = _noise_pools(rows, build)
    pending = np.arange(len(rows))
    for attempt in range(spec.max_redraws + 1):
        if not len(pending):
            break
        _draw_noise(rows, pending, codes[pending], pools, attempt, build)
        silent = dsp.power_db(rows[NOISE_POWER].to_numpy()[pending]) < spec.silence_dbfs
        too_looped = (_repeats(rows.iloc[pending], build) > spec.max_loops if spec.max_loops is not None
                      else np.zeros(len(pending), dtype=bool))
        if attempt < spec.max_redraws:
            report.counts["silent noise segments redrawn"] += int(silent.sum())
            if spec.max_loops is not None:
                report.counts["noise segments redrawn (would loop more than --max-loops)"] += int((too_looped & ~silent).sum())
        pending, silent = pending[silent | too_looped], silent[silent | too_looped]
    if len(pending):
        example = rows.iloc[pending[0]]
        if not silent.all():
            raise NoisemixError(f"{len(pending)} mixture(s) would loop their noise more than --max-loops "
                                f"{spec.max_loops} times after {spec.max_redraws} redraws, e.g. "
                                f"{example[S.CLEAN_SOURCE_ID]} ({example[S.NOISE_CATEGORY]}); add longer recordings, "
                                f"raise --max-loops or use --noise-fill concat")
        raise NoisemixError(f"{len(pending)} mixture(s) found only silent noise after {spec.max_redraws} redraws, "
                            f"e.g. {example[S.CLEAN_SOURCE_ID]}; check the noise corpus")
    _note_looped(rows, report)
    return rows


def _noise_pools(rows, build: _Build) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """Each row's noise pool as a code, and per code the rows of ``sources`` in that pool."""
    sources, spec = build.sources, build.spec
    codes, pairs = _pool_codes(rows)
    noise = sources[S.ROLE] == "noise"
    pools = {}
    for code, (name, category) in enumerate(pairs):
        pool = np.flatnonzero((noise & (sources[POOL] == name) & (sources[S.CATEGORY] == category)).to_numpy())
        if not len(pool):
            raise NoisemixError(f"no {category} noise in {'split ' if spec.folds is None else ''}{name}: add "
                                f"{category} noise recordings (noise groups are split "
                                f"{'/'.join(f'{f:g}' for f in spec.split_fractions)})")
        pools[code] = pool
    return codes, pools


def _repeats(rows, build: _Build) -> np.ndarray:
    """How often each row's noise starts a recording over: the loops of a looped recording,
    or the most repeated recording of a sequence (0 when nothing repeats)."""
    out = np.zeros(len(rows), dtype=np.int64)
    for i, (row, offset, length, looped, following) in enumerate(zip(
            rows[NOISE_ROW], rows[S.NOISE_OFFSET], rows[S.NUM_FRAMES], rows[S.NOISE_LOOPED],
            rows[NOISE_FOLLOWING])):
        if following:
            out[i] = max(Counter((row, *following)).values()) - 1
        elif looped:
            frames = int(build.index.frames[row])
            period = frames - dsp.crossfade_length(frames, build.spec.sample_rate, build.spec.crossfade_s)
            out[i] = -(-(offset % period + length) // period) - 1
    return out


def _note_looped(rows, report) -> None:
    """The build summary's line on looped noise, per category."""
    looped = rows.groupby(S.NOISE_CATEGORY)[S.NOISE_LOOPED].agg(["sum", "size"])
    report.notes.append("looped noise: " + ", ".join(f"{category} {int(n)} of {int(total)} ({n / total:.0%})"
                                                     for category, (n, total) in looped.iterrows()))


def _pool_codes(rows) -> tuple[np.ndarray, list[tuple[str, str]]]:
    """Each row's noise pool (split or fold, and category) as a code into the returned sorted pairs."""
    split_codes, splits = pd.factorize(rows[POOL].to_numpy(object), sort=True)
    category_codes, categories = pd.factorize(rows[S.NOISE_CATEGORY].to_numpy(object), sort=True)
    combined = split_codes * max(len(categories), 1) + category_codes
    used, codes = np.unique(combined, return_inverse=True)
    pairs = [(splits[u // max(len(categories), 1)], categories[u % max(len(categories), 1)]) for u in used]
    return codes.reshape(-1), pairs


def _draw_noise(rows, pending, codes, pools, attempt, build: _Build) -> None:
    """Draw (redraw, from ``attempt`` on) the noise recording, offset and power of the ``pending`` rows."""
    spec, index = build.spec, build.index
    keys = rows[KEY].to_numpy()[pending]
    stream = attempt * REDRAW_STREAM_STEP
    lengths = rows[S.NUM_FRAMES].to_numpy()[pending]
    chosen = np.empty(len(pending), dtype=np.int64)
    for code, pool in pools.items():
        mask = codes == code
        chosen[mask] = pool[rng.integers(spec.seed, keys[mask], STREAM["noise"] + stream, len(pool))]
    frames = index.frames[chosen]
    looped = frames < lengths
    block = index.block
    span = np.where(looped, frames, frames - lengths) // block + 1
    offsets = rng.integers(spec.seed, keys, STREAM["offset"] + stream, np.maximum(span, 1)) * block
    offsets = np.where(looped, offsets % np.maximum(frames, 1), offsets)
    following = np.empty(len(pending), dtype=object)
    following[:] = [()] * len(pending)
    if spec.noise_fill == "concat":
        for code, pool in pools.items():
            for i in np.flatnonzero((codes == code) & looped):
                following[i], looped[i] = _sequence(pool, int(chosen[i]), int(offsets[i]), int(lengths[i]),
                                                    int(keys[i]), stream, build)
    power = index.power(chosen, offsets, lengths)
    sequence = np.array([len(f) > 0 for f in following], dtype=bool)
    for i in np.flatnonzero(sequence):
        power[i] = dsp.power(build.noise_samples(chosen[i], offsets[i], lengths[i], looped[i], following[i]))
    unindexed = (looped | np.isnan(power)) & ~sequence
    power[unindexed] = _segment_powers(chosen[unindexed], offsets[unindexed], lengths[unindexed], looped[unindexed],
                                       build)
    at = rows.index[pending]
    rows.loc[at, NOISE_ROW] = chosen
    rows.loc[at, S.NOISE_OFFSET] = offsets
    rows.loc[at, S.NOISE_LOOPED] = looped
    rows.loc[at, NOISE_POWER] = power
    column = rows[NOISE_FOLLOWING].to_numpy(copy=True)
    column[pending] = following
    rows[NOISE_FOLLOWING] = column


def _sequence(pool: np.ndarray, first: int, offset: int, length: int, key: int, stream: int,
              build: _Build) -> tuple[tuple, bool]:
    """The recordings that follow ``first`` (from ``offset``) until ``length`` samples are
    covered: the pool's other recordings in an order drawn from (seed, key), each used once
    before any repeats (then ``looped`` is True: the pool holds too little noise)."""
    spec, frames = build.spec, build.index.frames
    others = pool[pool != first]
    order = others[np.argsort(rng.uniform(spec.seed, rng.mix_keys(np.full(len(others), key, np.uint64),
                                                                  others.astype(np.uint64)),
                                          STREAM["sequence"] + stream), kind="stable")]
    cycle = np.concatenate([order, [first]])
    crossfade = dsp.crossfade_samples(spec.sample_rate, spec.crossfade_s)
    sizes, chosen = [int(frames[first]) - offset], []
    while sum(sizes) - int(dsp.concat_overlaps(sizes, crossfade).sum()) < length:
        chosen.append(int(cycle[len(chosen) % len(cycle)]))
        sizes.append(int(frames[chosen[-1]]))
    return tuple(chosen), len(chosen) >= len(cycle)


def _segment_powers(rows, offsets, lengths, looped, build: _Build) -> np.ndarray:
    """Mean power of noise segments that the index cannot answer (loops, unaligned crops),
    a recording at a time, without materialising the segments (:func:`segment_energies`)."""
    power = np.empty(len(rows))
    order = np.argsort(rows, kind="stable")
    bounds = np.flatnonzero(np.diff(rows[order])) + 1
    for group in np.split(order, bounds) if len(order) else []:
        recording = build.source_audio(rows[group[0]])
        crossfade = dsp.crossfade_length(recording.size, build.spec.sample_rate, build.spec.crossfade_s)
        energy = segment_energies(recording, offsets[group], lengths[group], looped[group], crossfade,
                                  build.index.block)
        power[group] = energy / lengths[group]
    return power


def _gains(rows, segments, build: _Build) -> tuple[pd.DataFrame, np.ndarray]:
    """Noise gain for the target SNR, the level policy, then the clipping guard on both
    gains; and the gain of each segment's clean reference row (1 unless the level policy
    gives the segment headroom)."""
    spec, index = build.spec, build.index
    of_segment = rows[SEGMENT_ROW].to_numpy()
    length = rows[S.NUM_FRAMES].to_numpy()
    clean_peak = index.peak_bound(rows[CLEAN_ROW].to_numpy(), rows[S.CLEAN_OFFSET].to_numpy(), length)
    noise_peak = _noise_peak_bound(rows, index)
    clean_power, noise_power = segments[CLEAN_POWER].to_numpy()[of_segment], rows[NOISE_POWER].to_numpy().copy()
    noise_tf = np.array([transforms.NO_TRANSFORMS] * len(rows), dtype=object)
    if spec.noise_transforms or spec.snr_definition == "lufs":
        for i in range(len(rows)):
            noise_tf[i], noise_power[i], noise_peak[i], measured = _transformed_noise(rows.iloc[i], build)
            if measured is not None:
                clean_power[i], noise_power[i] = measured
    clean_gain, noise_gain = dsp.gains_for_snr(clean_power, noise_power, rows[S.SNR_DB].to_numpy(), spec.level)
    reference_gain = np.ones(len(segments))
    if spec.clip_policy == "scale":
        scale = dsp.peak_guard_scale(clean_gain * clean_peak + noise_gain * noise_peak)
        if spec.level == "match-clean":
            reference_gain = clean_headroom(segments, index, spec.headroom_db)
            alone = scale < reference_gain[of_segment]
            build.report.counts["noisy mixtures scaled below their clip's level (clipping guard)"] += int(alone.sum())
            scale = np.minimum(scale, reference_gain[of_segment])
        clean_gain, noise_gain = clean_gain * scale, noise_gain * scale
    mixture_tf = ([transforms.draw(list(spec.mixture_transforms), spec.seed, int(k), int(n), spec.sample_rate)
                   for k, n in zip(rows[KEY], length)] if spec.mixture_transforms
                  else np.full(len(rows), transforms.NO_TRANSFORMS, dtype=object))
    return (rows.assign(**{S.CLEAN_GAIN: dsp.stable_gains(clean_gain), S.NOISE_GAIN: dsp.stable_gains(noise_gain),
                           S.NOISE_TRANSFORMS: noise_tf, S.MIXTURE_TRANSFORMS: mixture_tf}),
            dsp.stable_gains(reference_gain))


def _transformed_noise(row, build: _Build):
    """A row's noise transforms (drawn from its key), the transformed noise's power and peak,
    and, under ``--snr-definition lufs``, the (clean, noise) loudness as power (else None)."""
    spec, length = build.spec, int(row[S.NUM_FRAMES])
    noise = build.noise_samples(row[NOISE_ROW], row[S.NOISE_OFFSET], length, row[S.NOISE_LOOPED], row[NOISE_FOLLOWING])
    drawn = transforms.draw(list(spec.noise_transforms), spec.seed, int(row[KEY]), length, spec.sample_rate)
    noise = transforms.apply(drawn, noise, spec.sample_rate)
    measured = None
    if spec.snr_definition == "lufs":
        offset = int(row[S.CLEAN_OFFSET])
        clean = build.source_audio(row[CLEAN_ROW])[offset:offset + length]
        measured = _loudness_as_power(clean, noise, spec.sample_rate, row[S.CLEAN_SOURCE_ID])
    return drawn, dsp.power(noise), float(np.max(np.abs(noise))), measured


def _noise_peak_bound(rows, index) -> np.ndarray:
    """An upper bound of each row's noise segment peak, from the index."""
    position, offset = rows[NOISE_ROW].to_numpy(), rows[S.NOISE_OFFSET].to_numpy()
    looped = rows[S.NOISE_LOOPED].to_numpy(dtype=bool)
    following = rows[NOISE_FOLLOWING].to_numpy()
    sequence = np.array([bool(f) for f in following], dtype=bool)
    frames = index.frames[position]
    # A looped noise may cover its whole source: bound it by the whole source's peak; a
    # sequence's first recording plays from its offset to its end.
    peak = index.peak_bound(position, np.where(looped & ~sequence, 0, offset),
                            np.where(sequence, frames - offset,
                                     np.where(looped, frames, rows[S.NUM_FRAMES].to_numpy())))
    for i in np.flatnonzero(sequence):
        parts = np.array(following[i])
        peak[i] = max(peak[i], float(index.peak_bound(parts, np.zeros_like(parts), index.frames[parts]).max()))
    return peak


def clean_headroom(segments, index, headroom_db: float) -> np.ndarray:
    """Per clean segment, the gain of all its rows under ``match-clean``: its peak brought
    ``headroom_db`` below full scale (1 when already there). From the clean alone, so the
    clean reference does not depend on the noise drawn for the segment's mixtures."""
    clean_peak = index.peak_bound(segments[CLEAN_ROW].to_numpy(), segments[S.CLEAN_OFFSET].to_numpy(),
                                  segments[S.NUM_FRAMES].to_numpy())
    return dsp.headroom_scale(clean_peak, headroom_db)


def _loudness_as_power(clean, noise, sample_rate, clean_id) -> tuple[float, float]:
    """Loudness expressed as power (10**(L/10)), so one gain formula serves both definitions."""
    lc, ln = dsp.loudness_lufs(clean, sample_rate), dsp.loudness_lufs(noise, sample_rate)
    if not (np.isfinite(lc) and np.isfinite(ln)):
        raise NoisemixError(f"clean source {clean_id}: loudness undefined (segment silent or shorter than 0.4 s); use --snr-definition rms")
    return 10 ** (lc / 10), 10 ** (ln / 10)


def _clean_rows(segments: pd.DataFrame, clean_gain: np.ndarray) -> pd.DataFrame:
    """One clean reference row per segment (no noise), at the segment's reference gain."""
    return segments.assign(**{
        SEGMENT_ROW: np.arange(len(segments)), ORDER: -1, S.NOISE_CATEGORY: "", S.SNR_DB: np.nan, NOISE_ROW: -1,
        GRID: False, S.NOISE_OFFSET: 0, S.NOISE_LOOPED: False, NOISE_FOLLOWING: [()] * len(segments),
        S.CLEAN_GAIN: clean_gain, S.NOISE_GAIN: 0.0,
        S.NOISE_TRANSFORMS: transforms.NO_TRANSFORMS, S.MIXTURE_TRANSFORMS: transforms.NO_TRANSFORMS,
    })


def _to_schema(rows: pd.DataFrame, build: _Build) -> pd.DataFrame:
    """The planned rows as manifest rows: source rows become ids, tags and noise subcategories."""
    sources, sample_rate = build.sources, build.spec.sample_rate
    noise_row = rows[NOISE_ROW].to_numpy()
    has_noise = noise_row >= 0
    safe = np.where(has_noise, noise_row, 0)
    ids = sources[S.SOURCE_ID].to_numpy(object)
    tags = np.empty(len(sources), dtype=object)
    tags[:] = [list(t) for t in sources[S.TAGS]]
    length = rows[S.NUM_FRAMES].to_numpy()
    return pd.DataFrame({
        S.MIXTURE_ID: _mixture_ids(rows),
        S.SPLIT: rows[S.SPLIT].to_numpy(object),
        S.SAMPLE_RATE: np.full(len(rows), sample_rate, dtype=np.int32),
        S.CLEAN_SOURCE_ID: rows[S.CLEAN_SOURCE_ID].to_numpy(object),
        S.CLEAN_OFFSET: rows[S.CLEAN_OFFSET].to_numpy().astype(np.int64),
        S.NUM_FRAMES: length.astype(np.int64),
        S.DURATION_S: length / sample_rate,
        S.TAGS: tags[rows[CLEAN_ROW].to_numpy()],
        S.NOISE_SOURCE_ID: np.where(has_noise, ids[safe], ""),
        S.NOISE_CATEGORY: np.where(has_noise, rows[S.NOISE_CATEGORY].to_numpy(object), ""),
        S.NOISE_SUBCATEGORY: np.where(has_noise, sources[S.SUBCATEGORY].to_numpy(object)[safe], ""),
        S.NOISE_OFFSET: rows[S.NOISE_OFFSET].to_numpy().astype(np.int64),
        S.NOISE_LOOPED: rows[S.NOISE_LOOPED].to_numpy().astype(bool),
        S.FOLD: rows[S.FOLD].to_numpy().astype(np.int32),
        S.NOISE_NEXT_IDS: [[ids[r] for r in f] for f in rows[NOISE_FOLLOWING]],
        S.SNR_DB: rows[S.SNR_DB].to_numpy().astype(np.float64),
        S.CLEAN_GAIN: rows[S.CLEAN_GAIN].to_numpy().astype(np.float64),
        S.NOISE_GAIN: rows[S.NOISE_GAIN].to_numpy().astype(np.float64),
        S.NOISE_TRANSFORMS: rows[S.NOISE_TRANSFORMS].to_numpy(object),
        S.MIXTURE_TRANSFORMS: rows[S.MIXTURE_TRANSFORMS].to_numpy(object),
    })


def _mixture_ids(rows: pd.DataFrame) -> list[str]:
    """``<clean id>-<segment>-<suffix>``: ``clean``, the mixture number, or ``<category>-<snr>dB`` (grid)."""
    order, category, snr = rows[ORDER].to_numpy(), rows[S.NOISE_CATEGORY].to_numpy(object), rows[S.SNR_DB].to_numpy()
    grid = rows[GRID].to_numpy(dtype=bool)
    suffix = ["clean" if o < 0 else f"{c}-{s:g}dB" if g else f"{o:02d}"
              for o, c, s, g in zip(order.tolist(), category, snr, grid)]
    return [f"{c}-{s:03d}-{x}" for c, s, x in zip(rows[S.CLEAN_SOURCE_ID].to_numpy(object), rows[SEGMENT].tolist(), suffix)]
