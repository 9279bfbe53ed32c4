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
from .audio import DecodedCache, resampler_name, resolve
from .cache import cache_dir, decoded_dir
from .energy import IndexRequest, SourceIndex, block_size_for, segment_energies, source_index
from .errors import AudioError, NoisemixError
from .manifest import fold_split, frame_to_table, write_manifest
from .mix import fill_noise
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
    return assign_folds(sources, spec.folds) if spec.folds else sources.assign(fold=-1, pool=sources[S.SPLIT])


def assign_folds(sources: pd.DataFrame, folds: int) -> pd.DataFrame:
    """Deal every group, within each role and noise category, to one of ``folds`` folds
    (ordered by a hash of the group name, round robin: the same group always lands in the
    same fold), and name each source's noise pool after its fold, so a clip only meets noise
    of its own fold. The split columns are fold 0's (test 0, valid 1, train the rest);
    ``noisemix.select_fold`` moves them to another fold."""
    sources = sources.copy()
    sources["fold"] = -1
    for _, part in sources.groupby([S.ROLE, S.CATEGORY], sort=True):
        groups = sorted(set(part[S.GROUP]), key=lambda g: (rng.stable_key("split", g), g))
        if len(groups) < folds:
            raise NoisemixError(f"--folds {folds}: only {len(groups)} {part[S.ROLE].iloc[0]} group(s)"
                                f"{' of ' + part[S.CATEGORY].iloc[0] + ' noise' if part[S.CATEGORY].iloc[0] else ''}; "
                                f"every fold needs at least one")
        fold_of = {group: i % folds for i, group in enumerate(groups)}
        sources.loc[part.index, "fold"] = part[S.GROUP].map(fold_of)
    sources[S.SPLIT] = fold_split(sources["fold"].to_numpy(), folds)
    return sources.assign(pool=[f"fold {f}" for f in sources["fold"]])


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


def _segments(sources: pd.DataFrame, index: SourceIndex, spec: BuildSpec, report: BuildReport) -> pd.DataFrame:
    """Clean segments: fixed, non-overlapping windows of each clean clip (NaN power if unaligned)."""
    clean = np.flatnonzero((sources[S.ROLE] == "clean").to_numpy())
    frames = index.frames[clean]
    if spec.segment_frames is None:
        counts, lengths = np.ones_like(frames), frames
    else:
        counts, lengths = frames // spec.segment_frames, np.full_like(frames, spec.segment_frames)
        if spec.max_segments_per_clip:
            counts = np.minimum(counts, spec.max_segments_per_clip)
        report.counts["clean clips shorter than one segment"] += int(np.sum(counts == 0))
    position = np.repeat(clean, counts)
    number = np.concatenate([np.arange(c) for c in counts]) if len(counts) else np.zeros(0, np.int64)
    length = np.repeat(lengths, counts)
    segments = pd.DataFrame({"position": position, "segment": number, "offset": number * length, "length": length})
    segments["power"] = index.power(position, segments["offset"].to_numpy(), length)
    return segments


def plan_mixtures(sources, index, spec, roots, audio, report) -> pd.DataFrame:
    """The mixture rows of ``spec`` as a DataFrame in MIXTURES_SCHEMA column order."""
    if "pool" not in sources.columns:  # sources split by the caller (e.g. a benchmark)
        sources = _with_pools(sources, spec)
    segments = _segments(sources, index, spec, report)
    segments = segments.assign(**{name: sources[column].to_numpy()[segments["position"]] for name, column in
                                  (("clean_id", S.SOURCE_ID), ("split", S.SPLIT), ("fold", "fold"), ("pool", "pool"))})
    segments["power"] = _fill_unaligned(segments, sources, roots, audio, spec)
    silent = dsp.power_db(segments["power"].to_numpy()) < spec.silence_dbfs
    report.counts["silent clean segments skipped"] += int(silent.sum())
    segments = segments[~silent].reset_index(drop=True)
    rows = _draw_split_rows(segments, sources, spec)
    seg = rows["seg"].to_numpy()
    rows = rows.assign(**{name: segments[name].to_numpy()[seg]
                          for name in ("clean_id", "segment", "split", "fold", "pool", "length", "position")})
    rows = _choose_noise(rows, sources, index, spec, roots, audio, report)
    rows, reference_gain = _gains(rows, segments, index, spec, roots, audio, sources, report)
    if spec.clean_references:
        rows = pd.concat([rows, _clean_rows(segments, reference_gain)], ignore_index=True)
    rows = rows.sort_values(["clean_id", "segment", "order"], kind="stable").reset_index(drop=True)
    return _to_schema(rows, sources, spec)


def _fill_unaligned(segments, sources, roots, audio, spec):
    power = segments["power"].to_numpy().copy()
    for i in np.flatnonzero(np.isnan(power)):
        row = segments.iloc[i]
        samples = _source_audio(sources, row["position"], roots, audio)
        power[i] = dsp.power(samples[int(row["offset"]):int(row["offset"] + row["length"])])
    return power


def _draw_split_rows(segments: pd.DataFrame, sources: pd.DataFrame, spec: BuildSpec) -> pd.DataFrame:
    """Planned rows, each split drawn with its own spec when the spec has per-split options.

    Keys depend on the clean segment only, so splitting the draw changes no value.
    """
    if not spec.splits:
        return _draw_rows(segments, np.arange(len(segments)), sources, spec)
    parts = [_draw_rows(segments.iloc[where], where, sources, spec.for_split(split))
             for split in S.SPLITS if len(where := np.flatnonzero((segments["split"] == split).to_numpy()))]
    return pd.concat(parts, ignore_index=True) if parts else _draw_rows(segments, np.arange(len(segments)), sources, spec)


def _draw_rows(segments: pd.DataFrame, seg_index: np.ndarray, sources: pd.DataFrame, spec: BuildSpec) -> pd.DataFrame:
    """One row per planned mixture with its key, category and target SNR (``seg`` indexes all segments)."""
    present = sorted(set(sources.loc[sources[S.ROLE] == "noise", S.CATEGORY]))
    categories = [c for c in present if spec.category_weights.get(c, 1.0) > 0] if spec.category_weights else present
    if not categories:
        raise NoisemixError("no noise sources: give at least one --noise CATEGORY=PATH")
    base_keys = rng.stable_keys(f"{c}:{s}" for c, s in zip(segments["clean_id"], segments["segment"]))
    if spec.design == "grid":
        cells = [(c, level) for c in categories for level in spec.snr_for(c).levels_db]
        rep = np.repeat(seg_index, len(cells))
        cell = np.tile(np.arange(len(cells)), len(segments))
        category = np.array([cells[i][0] for i in cell], dtype=object)
        snr = np.array([cells[i][1] for i in cell], dtype=np.float64)
        keys = _combine(np.repeat(base_keys, len(cells)), cell)
        return pd.DataFrame({"seg": rep, "order": cell, "key": keys, "category": category, "snr": snr, "grid": True})
    rep = np.repeat(seg_index, spec.mixtures_per_segment)
    number = np.tile(np.arange(spec.mixtures_per_segment), len(segments))
    keys = _combine(np.repeat(base_keys, spec.mixtures_per_segment), number)
    weights = [spec.category_weights.get(c, 1.0) for c in categories]
    category = np.array(categories, dtype=object)[rng.choice_index(spec.seed, keys, STREAM["category"], weights)]
    snr = np.empty(len(keys))
    for name in categories:
        mask = category == name
        snr[mask] = _draw_snr(spec.snr_for(name), spec.seed, keys[mask])
    return pd.DataFrame({"seg": rep, "order": number, "key": keys, "category": category, "snr": snr, "grid": False})


def _combine(keys: np.ndarray, numbers: np.ndarray) -> np.ndarray:
    return rng.mix_keys(keys, np.asarray(numbers, dtype=np.uint64))


def _draw_snr(snr_spec, seed, keys) -> np.ndarray:
    if snr_spec.is_grid:
        levels = np.array(snr_spec.levels_db)
        return levels[rng.integers(seed, keys, STREAM["snr"], len(levels))]
    return snr_spec.low_db + (snr_spec.high_db - snr_spec.low_db) * rng.uniform(seed, keys, STREAM["snr"])


def _choose_noise(rows, sources, index, spec, roots, audio, report) -> pd.DataFrame:
    """Noise source and offset per row; silent noise segments are redrawn."""
    rows = rows.assign(noise=-1, noise_offset=0, looped=False, noise_power=np.nan,
                       following=[()] * len(rows))  # positions of the recordings joined after ``noise``
    codes, pairs = _pool_codes(rows)
    noise = sources[S.ROLE] == "noise"
    pools = {}
    for code, (name, category) in enumerate(pairs):
        pool = np.flatnonzero((noise & (sources["pool"] == name) & (sources[S.CATEGORY] == category)).to_numpy())
        if not len(pool):
            raise NoisemixError(f"no {category} noise in {'split ' if spec.folds is None else ''}{name}: add "
                                f"{category} noise recordings (noise groups are split "
                                f"{'/'.join(f'{f:g}' for f in spec.split_fractions)})")
        pools[code] = pool
    pending = np.arange(len(rows))
    for attempt in range(spec.max_redraws + 1):
        if not len(pending):
            break
        _draw_noise(rows, pending, codes[pending], pools, index, spec, attempt, roots, audio, sources)
        silent = dsp.power_db(rows["noise_power"].to_numpy()[pending]) < spec.silence_dbfs
        too_looped = (_repeats(rows.iloc[pending], index, spec) > spec.max_loops if spec.max_loops is not None
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
                                f"{spec.max_loops} times after {spec.max_redraws} redraws, e.g. {example['clean_id']} "
                                f"({example['category']}); add longer recordings, raise --max-loops or use "
                                f"--noise-fill concat")
        raise NoisemixError(f"{len(pending)} mixture(s) found only silent noise after {spec.max_redraws} redraws, "
                            f"e.g. {example['clean_id']}; check the noise corpus")
    _note_looped(rows, report)
    return rows


def _repeats(rows, index, spec) -> np.ndarray:
    """How often each row's noise starts a recording over: the loops of a looped recording,
    or the most repeated recording of a sequence (0 when nothing repeats)."""
    out = np.zeros(len(rows), dtype=np.int64)
    for i, (position, offset, length, looped, following) in enumerate(zip(
            rows["noise"], rows["noise_offset"], rows["length"], rows["looped"], rows["following"])):
        if following:
            out[i] = max(Counter((position, *following)).values()) - 1
        elif looped:
            frames = int(index.frames[position])
            period = frames - dsp.crossfade_length(frames, spec.sample_rate, spec.crossfade_s)
            out[i] = -(-(offset % period + length) // period) - 1
    return out


def _note_looped(rows, report) -> None:
    """The build summary's line on looped noise, per category."""
    looped = rows.groupby("category")["looped"].agg(["sum", "size"])
    report.notes.append("looped noise: " + ", ".join(f"{category} {int(n)} of {int(total)} ({n / total:.0%})"
                                                     for category, (n, total) in looped.iterrows()))


def _pool_codes(rows) -> tuple[np.ndarray, list[tuple[str, str]]]:
    """Each row's noise pool (split or fold, and category) as a code into the returned sorted pairs."""
    split_codes, splits = pd.factorize(rows["pool"].to_numpy(object), sort=True)
    category_codes, categories = pd.factorize(rows["category"].to_numpy(object), sort=True)
    combined = split_codes * max(len(categories), 1) + category_codes
    used, codes = np.unique(combined, return_inverse=True)
    pairs = [(splits[u // max(len(categories), 1)], categories[u % max(len(categories), 1)]) for u in used]
    return codes.reshape(-1), pairs


def _draw_noise(rows, pending, codes, pools, index, spec, attempt, roots, audio, sources) -> None:
    keys = rows["key"].to_numpy()[pending]
    stream = attempt * REDRAW_STREAM_STEP
    lengths = rows["length"].to_numpy()[pending]
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
                following[i], looped[i] = _sequence(pool, int(chosen[i]), int(offsets[i]), int(lengths[i]), index,
                                                    spec, int(keys[i]), stream)
    power = index.power(chosen, offsets, lengths)
    sequence = np.array([len(f) > 0 for f in following], dtype=bool)
    for i in np.flatnonzero(sequence):
        segment = _noise_samples(sources, int(chosen[i]), int(offsets[i]), int(lengths[i]), bool(looped[i]), roots,
                                 audio, spec, following[i])
        power[i] = dsp.power(segment)
    unindexed = (looped | np.isnan(power)) & ~sequence
    power[unindexed] = _segment_powers(chosen[unindexed], offsets[unindexed], lengths[unindexed], looped[unindexed],
                                       sources, roots, audio, spec, index.block)
    rows.loc[rows.index[pending], "noise"] = chosen
    rows.loc[rows.index[pending], "noise_offset"] = offsets
    rows.loc[rows.index[pending], "looped"] = looped
    rows.loc[rows.index[pending], "noise_power"] = power
    column = rows["following"].to_numpy(copy=True)
    column[pending] = following
    rows["following"] = column


def _sequence(pool: np.ndarray, first: int, offset: int, length: int, index, spec, key: int,
              stream: int) -> tuple[tuple, bool]:
    """The recordings that follow ``first`` (from ``offset``) until ``length`` samples are
    covered: the pool's other recordings in an order drawn from (seed, key), each used once
    before any repeats (then ``looped`` is True: the pool holds too little noise)."""
    others = pool[pool != first]
    order = others[np.argsort(rng.uniform(spec.seed, rng.mix_keys(np.full(len(others), key, np.uint64),
                                                                  others.astype(np.uint64)),
                                          STREAM["sequence"] + stream), kind="stable")]
    cycle = np.concatenate([order, [first]])
    crossfade = dsp.crossfade_samples(spec.sample_rate, spec.crossfade_s)
    sizes, chosen = [int(index.frames[first]) - offset], []
    while sum(sizes) - int(dsp.concat_overlaps(sizes, crossfade).sum()) < length:
        chosen.append(int(cycle[len(chosen) % len(cycle)]))
        sizes.append(int(index.frames[chosen[-1]]))
    return tuple(chosen), len(chosen) >= len(cycle)


def _segment_powers(positions, offsets, lengths, looped, sources, roots, audio, spec, block) -> np.ndarray:
    """Mean power of noise segments that the index cannot answer (loops, unaligned crops),
    a recording at a time, without materialising the segments (:func:`segment_energies`)."""
    power = np.empty(len(positions))
    order = np.argsort(positions, kind="stable")
    bounds = np.flatnonzero(np.diff(positions[order])) + 1
    for group in np.split(order, bounds) if len(order) else []:
        recording = _source_audio(sources, positions[group[0]], roots, audio)
        crossfade = dsp.crossfade_length(recording.size, spec.sample_rate, spec.crossfade_s)
        energy = segment_energies(recording, offsets[group], lengths[group], looped[group], crossfade, block)
        power[group] = energy / lengths[group]
    return power


def _noise_samples(sources, position, offset, length, looped, roots, audio, spec, following=()) -> np.ndarray:
    return fill_noise(_source_audio(sources, position, roots, audio), offset, length, looped, spec.sample_rate,
                      spec.crossfade_s, [_source_audio(sources, p, roots, audio) for p in following])


def _gains(rows, segments, index, spec, roots, audio, sources, report) -> tuple[pd.DataFrame, np.ndarray]:
    """Noise gain for the target SNR, the level policy, then the clipping guard on both
    gains; and the gain of each segment's clean reference row (1 unless the level policy
    gives the segment headroom)."""
    seg = rows["seg"].to_numpy()
    clean_pos = segments["position"].to_numpy()[seg]
    clean_off = segments["offset"].to_numpy()[seg]
    length = rows["length"].to_numpy()
    noise_pos = rows["noise"].to_numpy()
    clean_peak = index.peak_bound(clean_pos, clean_off, length)
    looped = rows["looped"].to_numpy(dtype=bool)
    # A looped noise may cover its whole source: bound it by the whole source's peak.
    noise_peak = _noise_peak_bound(rows, index)
    noise_tf = np.array([transforms.NO_TRANSFORMS] * len(rows), dtype=object)
    clean_power, noise_power = segments["power"].to_numpy()[seg], rows["noise_power"].to_numpy().copy()
    if spec.noise_transforms or spec.snr_definition == "lufs":
        for i in range(len(rows)):
            r = rows.iloc[i]
            noise = _noise_samples(sources, int(r["noise"]), int(r["noise_offset"]), int(length[i]), bool(r["looped"]),
                                   roots, audio, spec, r["following"])
            noise_tf[i] = transforms.draw(list(spec.noise_transforms), spec.seed, int(r["key"]), int(length[i]), spec.sample_rate)
            noise = transforms.apply(noise_tf[i], noise, spec.sample_rate)
            noise_power[i], noise_peak[i] = dsp.power(noise), float(np.max(np.abs(noise)))
            if spec.snr_definition == "lufs":
                clean = _source_audio(sources, clean_pos[i], roots, audio)[clean_off[i]:clean_off[i] + length[i]]
                clean_power[i], noise_power[i] = _loudness_as_power(clean, noise, spec.sample_rate, r["clean_id"])
    clean_gain, noise_gain = dsp.gains_for_snr(clean_power, noise_power, rows["snr"].to_numpy(), spec.level)
    reference_gain = np.ones(len(segments))
    if spec.clip_policy == "scale":
        scale = dsp.peak_guard_scale(clean_gain * clean_peak + noise_gain * noise_peak)
        if spec.level == "match-clean":
            reference_gain = clean_headroom(segments, index, spec.headroom_db)
            alone = scale < reference_gain[seg]
            report.counts["noisy mixtures scaled below their clip's level (clipping guard)"] += int(alone.sum())
            scale = np.minimum(scale, reference_gain[seg])
        clean_gain, noise_gain = clean_gain * scale, noise_gain * scale
    clean_gain, noise_gain = dsp.stable_gains(clean_gain), dsp.stable_gains(noise_gain)
    mixture_tf = ([transforms.draw(list(spec.mixture_transforms), spec.seed, int(k), int(n), spec.sample_rate)
                   for k, n in zip(rows["key"], length)] if spec.mixture_transforms
                  else np.full(len(rows), transforms.NO_TRANSFORMS, dtype=object))
    return (rows.assign(clean_gain=clean_gain, noise_gain=noise_gain, noise_tf=noise_tf, mixture_tf=mixture_tf),
            dsp.stable_gains(reference_gain))


def _noise_peak_bound(rows, index) -> np.ndarray:
    """An upper bound of each row's noise segment peak, from the index."""
    position, offset = rows["noise"].to_numpy(), rows["noise_offset"].to_numpy()
    looped = rows["looped"].to_numpy(dtype=bool)
    following = rows["following"].to_numpy()
    sequence = np.array([bool(f) for f in following], dtype=bool)
    frames = index.frames[position]
    # A looped noise may cover its whole source: bound it by the whole source's peak; a
    # sequence's first recording plays from its offset to its end.
    peak = index.peak_bound(position, np.where(looped & ~sequence, 0, offset),
                            np.where(sequence, frames - offset, np.where(looped, frames, rows["length"].to_numpy())))
    for i in np.flatnonzero(sequence):
        parts = np.array(following[i])
        peak[i] = max(peak[i], float(index.peak_bound(parts, np.zeros_like(parts), index.frames[parts]).max()))
    return peak


def clean_headroom(segments, index, headroom_db: float) -> np.ndarray:
    """Per clean segment, the gain of all its rows under ``match-clean``: its peak brought
    ``headroom_db`` below full scale (1 when already there). From the clean alone, so the
    clean reference does not depend on the noise drawn for the segment's mixtures."""
    clean_peak = index.peak_bound(segments["position"].to_numpy(), segments["offset"].to_numpy(),
                                  segments["length"].to_numpy())
    return dsp.headroom_scale(clean_peak, headroom_db)


def _source_audio(sources, position, roots, audio: DecodedCache) -> np.ndarray:
    """Decoded audio (at the build's rate) of the source in row ``position`` of ``sources``."""
    position = int(position)
    return audio.get(resolve(roots, sources[S.ROOT].iat[position], sources[S.PATH].iat[position]),
                     sources[S.SHA256].iat[position])


def _loudness_as_power(clean, noise, sample_rate, clean_id) -> tuple[float, float]:
    """Loudness expressed as power (10**(L/10)), so one gain formula serves both definitions."""
    lc, ln = dsp.loudness_lufs(clean, sample_rate), dsp.loudness_lufs(noise, sample_rate)
    if not (np.isfinite(lc) and np.isfinite(ln)):
        raise NoisemixError(f"clean source {clean_id}: loudness undefined (segment silent or shorter than 0.4 s); use --snr-definition rms")
    return 10 ** (lc / 10), 10 ** (ln / 10)


def _clean_rows(segments: pd.DataFrame, clean_gain: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({
        "seg": np.arange(len(segments)), "order": -1, "category": "", "snr": np.nan, "noise": -1, "grid": False,
        "noise_offset": 0, "looped": False, "clean_gain": clean_gain, "noise_gain": 0.0,
        "noise_tf": transforms.NO_TRANSFORMS, "mixture_tf": transforms.NO_TRANSFORMS,
        "clean_id": segments["clean_id"].to_numpy(), "segment": segments["segment"].to_numpy(),
        "position": segments["position"].to_numpy(),
        "split": segments["split"].to_numpy(), "fold": segments["fold"].to_numpy(),
        "length": segments["length"].to_numpy(),
    })


def _to_schema(rows: pd.DataFrame, sources: pd.DataFrame, spec: BuildSpec) -> pd.DataFrame:
    noise_pos = rows["noise"].to_numpy()
    has_noise = noise_pos >= 0
    safe = np.where(has_noise, noise_pos, 0)
    ids = sources[S.SOURCE_ID].to_numpy(object)
    tags = np.empty(len(sources), dtype=object)
    tags[:] = [list(t) for t in sources[S.TAGS]]
    length = rows["length"].to_numpy()
    clean_offsets = rows["segment"].to_numpy() * length if spec.segment_frames else np.zeros(len(rows), np.int64)
    category = rows["category"].to_numpy(object)
    return pd.DataFrame({
        S.MIXTURE_ID: _mixture_ids(rows),
        S.SPLIT: rows["split"].to_numpy(object),
        S.SAMPLE_RATE: np.full(len(rows), spec.sample_rate, dtype=np.int32),
        S.CLEAN_SOURCE_ID: rows["clean_id"].to_numpy(object),
        S.CLEAN_OFFSET: clean_offsets.astype(np.int64),
        S.NUM_OUTPUT_FRAMES: length.astype(np.int64),
        S.DURATION_S: length / spec.sample_rate,
        S.TAGS: tags[rows["position"].to_numpy()],
        S.NOISE_SOURCE_ID: np.where(has_noise, ids[safe], ""),
        S.NOISE_CATEGORY: np.where(has_noise, category, ""),
        S.NOISE_SUBCATEGORY: np.where(has_noise, sources[S.SUBCATEGORY].to_numpy(object)[safe], ""),
        S.NOISE_OFFSET: rows["noise_offset"].to_numpy().astype(np.int64),
        S.NOISE_LOOPED: rows["looped"].to_numpy().astype(bool),
        S.FOLD: rows["fold"].to_numpy().astype(np.int32),
        S.NOISE_NEXT_IDS: [[ids[p] for p in f] if isinstance(f, tuple) else [] for f in rows["following"]],
        S.SNR_DB: rows["snr"].to_numpy().astype(np.float64),
        S.CLEAN_GAIN: rows["clean_gain"].to_numpy().astype(np.float64),
        S.NOISE_GAIN: rows["noise_gain"].to_numpy().astype(np.float64),
        S.NOISE_TRANSFORMS: rows["noise_tf"].to_numpy(object),
        S.MIXTURE_TRANSFORMS: rows["mixture_tf"].to_numpy(object),
    })


def _mixture_ids(rows: pd.DataFrame) -> list[str]:
    """``<clean id>-<segment>-<suffix>``: ``clean``, the mixture number, or ``<category>-<snr>dB`` (grid)."""
    order, category, snr = rows["order"].to_numpy(), rows["category"].to_numpy(object), rows["snr"].to_numpy()
    grid = rows["grid"].to_numpy(dtype=bool)
    suffix = ["clean" if o < 0 else f"{c}-{s:g}dB" if g else f"{o:02d}"
              for o, c, s, g in zip(order.tolist(), category, snr, grid)]
    return [f"{c}-{s:03d}-{x}" for c, s, x in zip(rows["clean_id"].to_numpy(object), rows["segment"].tolist(), suffix)]
