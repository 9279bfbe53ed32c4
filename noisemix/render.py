"""Writing mixtures (and optionally their stems) to audio files, resumably and in shards.

Each output file is written to a temporary name and renamed, and a journal line is
appended once it is complete, so an interrupted render leaves no half-written audio and
a re-run does only what is missing. Shard ``i/n`` renders the rows whose position in the
manifest is ``i`` modulo ``n``; any scheduler can run the shards anywhere.
"""

from __future__ import annotations

import ctypes
import hashlib
import io
import json
import multiprocessing
import struct
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from . import dsp, transforms
from . import schema as S
from .errors import NoisemixError
from .io import write_bytes, write_parquet
from .manifest import Manifest, frame_to_table, load_manifest, read_table
from .mix import Mixer, is_elementwise
from .roots import check_relative_path

__all__ = ["render_manifest", "load_renders", "rendered_files", "parse_shard", "renders_file", "render_keys",
           "render_status", "MIXING_VERSION"]

# Bump when the arithmetic that turns a row into samples changes: every render made before
# is then stale and re-rendered (its key no longer matches).
MIXING_VERSION = 1
# The columns a rendered file's samples (and its path) depend on.
KEY_COLUMNS = (S.SPLIT, S.SAMPLE_RATE, S.CLEAN_SOURCE_ID, S.CLEAN_OFFSET, S.NUM_FRAMES, S.NOISE_SOURCE_ID,
               S.NOISE_OFFSET, S.NOISE_LOOPED, S.NOISE_NEXT_IDS, S.CLEAN_GAIN, S.NOISE_GAIN, S.NOISE_TRANSFORMS,
               S.MIXTURE_TRANSFORMS)

FORMATS = {"flac": "FLAC", "wav": "WAV"}
# Decoded sources kept in memory per render process. Rows are rendered grouped by noise
# source, so a noise recording is seldom needed again once its rows are done; keeping it
# anyway costs fresh, page-faulted memory for every file, which on this machine costs more
# than decoding a WAV clip twice. Each cache always keeps the source it decoded last.
RENDER_MEMORY_MB = 8
# Clean sources that several rows share (grids, several mixtures per segment) sit in
# different noise groups; these are kept, as decoding (and resampling) MP3s again costs more.
SHARED_CLEAN_MEMORY_MB = 512
# Output samples of work per render process beyond the first (30 clips of 10 s at 22.05
# kHz): a process costs its start and decodes its noise again. With this rule,
# benchmarks/bench_render.py --curve measured two processes at 1.09x one's speed on 50
# clips and 1.50x on 200 (README); smaller renders run in one process.
FRAMES_PER_WORKER = 30 * 10 * 22050
# Samples per block when mixing: the block's float32 working arrays fit in a core's cache.
BLOCK_FRAMES = 1 << 16


def render_keys(manifest, fmt: str, rows: pd.DataFrame | None = None) -> dict[str, str]:
    """``mixture id -> key`` of everything a rendered file's samples depend on: the row's mixing
    columns (gains exactly), the sha256 of every source it reads, the build's resampler,
    crossfade and clip policy, the file format and :data:`MIXING_VERSION`. A render is valid
    only while its key is the current row's."""
    rows = manifest.mixtures if rows is None else rows
    spec = manifest.spec
    context = json.dumps([MIXING_VERSION, fmt, manifest.info.get(S.INFO_RESAMPLER, ""), spec.get("crossfade_s"),
                          spec.get("clip_policy", "scale")], default=str)
    sha = manifest.sources[S.SHA256].to_dict()
    keys = {}
    columns = [rows[c].tolist() for c in KEY_COLUMNS]
    for mid, values in zip(rows[S.MIXTURE_ID], zip(*columns)):
        parts = [context] + [v.hex() if isinstance(v, float) else str(list(v) if isinstance(v, (list, np.ndarray)) else v)
                             for v in values]
        row = dict(zip(KEY_COLUMNS, values))
        parts += [sha.get(row[S.CLEAN_SOURCE_ID], "")] + [sha.get(i, "") for i in (row[S.NOISE_SOURCE_ID], *row[S.NOISE_NEXT_IDS])]
        keys[mid] = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]
    return keys


def render_status(manifest, table: pd.DataFrame) -> pd.Series:
    """Per row of a renders table: ``current`` (its key is the manifest row's now), ``stale``
    (rendered from another version of the row) or ``orphan`` (the row is gone). The format a
    key covers is the file's own extension."""
    status = pd.Series("orphan", index=table.index, dtype=object)
    present = table[S.MIXTURE_ID].isin(set(manifest.mixtures[S.MIXTURE_ID]))
    for fmt, part in table[present].groupby(table[S.OUTPUT_PATH].str.rsplit(".", n=1).str[-1]):
        rows = manifest.mixtures[manifest.mixtures[S.MIXTURE_ID].isin(set(part[S.MIXTURE_ID]))]
        current = part[S.RENDER_KEY].to_numpy() == part[S.MIXTURE_ID].map(render_keys(manifest, fmt, rows)).to_numpy()
        status[part.index] = np.where(current, "current", "stale")
    return status


def load_renders(directory, manifest: Manifest | None = None) -> pd.DataFrame:
    """The renders table of a ``noisemix render`` output folder, one row per written file.

    Shard renders (``--shard I/N``) into one folder each write their own table; all are
    read. Where tables overlap, the most recently written one wins, as its files are the
    ones on disk. Given the ``manifest`` the audio is read for, renders made from another
    version of one of its rows (see :func:`render_status`) are refused.
    """
    directory = Path(directory)
    tables = sorted(directory.glob(S.RENDERS_GLOB), key=lambda path: (path.stat().st_mtime_ns, path.name))
    if not tables:
        raise S.ManifestError(f"{directory}: no renders table ({S.RENDERS_FILE}) found; run noisemix render first")
    # A table written before render keys existed reads with empty keys: every render in it is stale.
    defaults = {S.RENDER_KEY: "", S.MANIFEST_FINGERPRINT: ""}
    frame = pd.concat([read_table(path, S.RENDERS_SCHEMA, defaults).to_pandas() for path in tables],
                      ignore_index=True)
    for path in frame[S.OUTPUT_PATH]:
        check_relative_path(path, f"{directory} renders table")
    frame = frame.drop_duplicates([S.MIXTURE_ID, S.STEM], keep="last").reset_index(drop=True)
    if manifest is not None:
        _refuse_stale(directory, manifest, frame)
    return frame


def rendered_files(table: pd.DataFrame) -> dict[str, dict[str, str]]:
    """``stem -> {mixture id: path relative to the render folder}`` of a renders table."""
    return {stem: dict(zip(part[S.MIXTURE_ID], part[S.OUTPUT_PATH])) for stem, part in table.groupby(S.STEM)}


def _refuse_stale(directory: Path, manifest: Manifest, frame: pd.DataFrame) -> None:
    stale = frame[S.OUTPUT_PATH][render_status(manifest, frame) == "stale"]
    if len(stale):
        raise S.ManifestError(f"{directory}: {len(stale)} render(s) were made from another version of their "
                              f"manifest row, e.g. {stale.iloc[0]}; run noisemix render {manifest.directory} "
                              f"{directory} again")


def parse_shard(text: str | None) -> tuple[int, int]:
    """``"i/n"`` with 0 <= i < n (``None`` is the whole manifest, 0/1)."""
    if not text:
        return 0, 1
    try:
        index, count = (int(v) for v in text.split("/"))
    except ValueError:
        raise NoisemixError(f"--shard {text!r}: expected I/N, e.g. 0/4") from None
    if not 0 <= index < count:
        raise NoisemixError(f"--shard {text!r}: need 0 <= I < N")
    return index, count


def renders_file(shard: tuple[int, int]) -> str:
    return S.RENDERS_FILE if shard == (0, 1) else f"renders.shard-{shard[0]}-of-{shard[1]}.parquet"


def render_manifest(manifest_dir: Path, out: Path, *, roots=None, stems: bool = False, fmt: str = "flac",
                    workers: int = 1, shard: tuple[int, int] = (0, 1), loudness: bool = True,
                    progress: bool = True, cache_dir: Path | None = None, split: str | None = None) -> pd.DataFrame:
    """Render the shard's mixtures into ``out``; return (and write) its renders table."""
    from tqdm import tqdm

    if fmt not in FORMATS:
        raise NoisemixError(f"--format {fmt!r}: choose one of {', '.join(FORMATS)}")
    manifest = load_manifest(manifest_dir, roots)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _remove_temporaries(out)
    journal = out / f".journal-{shard[0]}-of-{shard[1]}.jsonl"
    rows = manifest.mixtures.iloc[shard[0]::shard[1]]
    if split is not None:
        rows = rows[rows[S.SPLIT] == split]
    needed = {S.STEM_MIXTURE, S.STEM_CLEAN} if stems else {S.STEM_MIXTURE}
    keys = render_keys(manifest, fmt, rows)
    done, outdated = _current_renders(_read_journal(journal, out), keys, set(manifest.mixtures[S.MIXTURE_ID]))
    _remove_outdated(out, outdated, keys, fmt, set(S.STEMS) if stems else {S.STEM_MIXTURE})
    finished = [mid in done and needed <= {r[S.STEM] for r in done[mid]} for mid in rows[S.MIXTURE_ID]]
    tasks = _tasks_by_source(rows[~np.array(finished, dtype=bool)])
    for name in rows[S.SPLIT].unique():
        (out / name).mkdir(exist_ok=True)
    clean_shared = bool(rows[S.CLEAN_SOURCE_ID].duplicated().any())
    job = _Job(str(manifest.directory), {k: str(v) for k, v in manifest.roots.items()}, str(out), stems, fmt, loudness,
               str(cache_dir) if cache_dir else None, SHARED_CLEAN_MEMORY_MB if clean_shared else RENDER_MEMORY_MB)
    job.mixer(manifest)  # this process's (and forked workers') Mixer, without loading the manifest again
    bar = tqdm(total=len(rows), initial=len(rows) - sum(map(len, tasks)), desc="render", unit="mix", disable=not progress)
    with open(journal, "a", encoding="utf-8") as log:
        for records in _run(job, tasks, workers):
            records = [dict(record, **{S.RENDER_KEY: keys[record[S.MIXTURE_ID]]}) for record in records]
            log.writelines(json.dumps(record) + "\n" for record in records)
            log.flush()
            done[records[0][S.MIXTURE_ID]] = records
            bar.update()
    bar.close()
    order = {mid: i for i, mid in enumerate(rows[S.MIXTURE_ID])}
    table = pd.DataFrame([r for mid in order for r in done.get(mid, [])], columns=S.RENDERS_SCHEMA.names)
    # Every listed file was just rendered or found current (same key) for this manifest.
    table[S.MANIFEST_FINGERPRINT] = manifest.fingerprints.get(S.FINGERPRINT_MIXTURES, "")
    write_parquet(frame_to_table(table, S.RENDERS_SCHEMA), out / renders_file(shard))
    return table


class _Job:
    """What a worker needs to render rows; cheap to pickle, builds its Mixer once."""

    def __init__(self, manifest_dir, roots, out, stems, fmt, loudness, cache_dir, clean_memory_mb=RENDER_MEMORY_MB):
        self.manifest_dir, self.roots, self.out = manifest_dir, roots, out
        self.stems, self.fmt, self.loudness, self.cache_dir = stems, fmt, loudness, cache_dir
        self.clean_memory_mb = clean_memory_mb
        self._mixer = None

    def mixer(self, manifest=None) -> Mixer:
        """The job's Mixer, built on first use from ``manifest`` (the caller's, already
        loaded) or by loading the manifest (a worker that was not forked)."""
        if self._mixer is None:
            manifest = manifest or load_manifest(self.manifest_dir, {k: Path(v) for k, v in self.roots.items()})
            self._mixer = Mixer(manifest, Path(self.cache_dir) if self.cache_dir else None,
                                memory_mb=RENDER_MEMORY_MB, clean_memory_mb=self.clean_memory_mb)
            # Plain per-column arrays: a row is a few array look-ups, not a pandas Series.
            self._columns = {name: manifest.mixtures[name].to_numpy(object) for name in S.MIXTURES_FULL_SCHEMA.names}
        return self._mixer

    def row(self, position: int) -> dict:
        self.mixer()
        return {name: values[position] for name, values in self._columns.items()}

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k not in ("_mixer", "_columns")} | {"_mixer": None}


_WORKER_JOB: _Job | None = None


def _init_worker(job: _Job | None) -> None:
    """Set up a render worker: ``job`` is None when it was inherited by fork."""
    global _WORKER_JOB
    if job is not None:
        _WORKER_JOB = job
    _reuse_freed_memory()


def _reuse_freed_memory() -> None:
    """Let glibc's malloc keep freed clip-sized buffers instead of unmapping them.

    Each clip allocates and frees several arrays of about 1 MB. By default glibc maps and
    unmaps them every time, and the next clip page-faults them back in: on this project's
    2-core machine an 800-clip render took 1.03 M page faults without this, 151 k with it.
    The setting holds for the rest of the process (up to 128 MB of freed memory stays with
    it). Other C libraries are left as they are.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    mallopt(m_mmap_threshold, 32 << 20)  # glibc's largest allowed value on 64-bit
    mallopt(m_trim_threshold, 128 << 20)


def _render_in_worker(positions: list[int]) -> list[list[dict]]:
    return [render_row(_WORKER_JOB, position) for position in positions]


def _run(job: _Job, tasks: list[list[int]], workers: int):
    """Records of each rendered row, in task order."""
    workers = useful_workers(workers, job, tasks)
    if workers <= 1:
        _reuse_freed_memory()
        for positions in tasks:
            for position in positions:
                yield render_row(job, position)
        return
    context = multiprocessing.get_context()
    if context.get_start_method() == "fork":
        # Forked workers inherit the job with its manifest already loaded: no worker reads
        # and validates the manifest again before its first row.
        global _WORKER_JOB
        _WORKER_JOB, initargs = job, (None,)
    else:
        initargs = (job,)
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_init_worker,
                             initargs=initargs) as pool:
        for results in pool.map(_render_in_worker, tasks):
            yield from results


def useful_workers(workers: int, job: _Job, tasks: list[list[int]]) -> int:
    """At most ``workers`` processes, fewer when the work is too small to pay for them:
    each worker beyond the first needs :data:`FRAMES_PER_WORKER` output samples, and one
    task at least (``--workers`` never makes a render slower than one process)."""
    frames = job.mixer().manifest.mixtures[S.NUM_FRAMES].to_numpy()
    total = int(frames[np.concatenate(tasks)].sum()) if tasks else 0
    return max(1, min(workers, len(tasks), 1 + total // FRAMES_PER_WORKER))


def render_row(job: _Job, position: int) -> list[dict]:
    """Render one mixture row (and stems); return its renders-table records."""
    mixer = job.mixer()
    row = job.row(position)
    rate = mixer.sample_rate
    render = _render_in_blocks if is_elementwise(row) else _render_transformed
    outputs, measured = render(mixer, row, job.stems)
    records = []
    for stem, pcm in outputs.items():
        name = f"{row[S.SPLIT]}/{row[S.MIXTURE_ID]}{'' if stem == 'mixture' else '.' + stem}.{job.fmt}"
        records.append({
            S.MIXTURE_ID: row[S.MIXTURE_ID], S.STEM: stem, S.OUTPUT_PATH: name,
            S.SHA256: _write_audio(f"{job.out}/{name}", pcm, rate, job.fmt),
            S.MEASURED_SNR_DB: measured, S.PEAK: max(int(pcm.max()), -int(pcm.min())) / 32768.0 if pcm.size else 0.0,
            S.LOUDNESS_LUFS: dsp.loudness_lufs(dsp.from_pcm16(pcm), rate) if job.loudness else float("nan"),
        })
    return records


def _render_in_blocks(mixer: Mixer, row, stems: bool, block: int = BLOCK_FRAMES) -> tuple[dict, float]:
    """16-bit mixture (and stems) of an untransformed row, and its measured SNR.

    The mixing kernel (:meth:`Mixer.mix_segments`) a block at a time, so that the
    intermediate arrays stay in the processor's cache: on such a row it is element-wise,
    so the samples are those of the whole row. Only the measurement's sums run in another
    order (about 1e-6 relative).
    """
    clean, noise = mixer.clean(row), mixer.noise(row)
    names = [S.STEM_MIXTURE] + ([S.STEM_CLEAN] if stems else []) + ([S.STEM_NOISE] if stems and noise is not None else [])
    outputs = {name: np.empty(clean.size, np.int16) for name in names}
    clean_energy = residual_energy = 0.0
    for start in range(0, clean.size, block):
        window = slice(start, start + block)
        part = mixer.mix_segments(row, clean[window], None if noise is None else noise[window])
        for name in names:
            dsp.to_pcm16(getattr(part, name), out=outputs[name][window])
        if noise is not None:
            residual = dsp.from_pcm16(outputs[S.STEM_MIXTURE][window])  # all in the written mixture that is not clean
            residual -= part.clean
            clean_energy += dsp.measured_energy(part.clean)
            residual_energy += dsp.measured_energy(residual)
    measured = float("nan") if noise is None else float(dsp.power_db(clean_energy) - dsp.power_db(residual_energy))
    return outputs, measured


def _render_transformed(mixer: Mixer, row, stems: bool) -> tuple[dict, float]:
    """Rows with transforms (filters are not element-wise): whole arrays at once."""
    clean, noise, mixture = mixer.mixed(row)
    mixture_pcm = dsp.to_pcm16(mixture)
    mixture_transformed = row[S.MIXTURE_TRANSFORMS] != transforms.NO_TRANSFORMS
    quantised = {}
    if stems or (noise is not None and mixture_transformed):
        quantised = {S.STEM_CLEAN: dsp.to_pcm16(clean)} | ({} if noise is None else {S.STEM_NOISE: dsp.to_pcm16(noise)})
    if noise is None:
        measured = float("nan")
    elif mixture_transformed:
        # The mixture is no longer clean + noise: compare the two stems as quantised.
        measured = dsp.snr_db(quantised[S.STEM_CLEAN], quantised[S.STEM_NOISE])
    else:
        measured = dsp.snr_db(clean, dsp.from_pcm16(mixture_pcm) - clean)
    return {S.STEM_MIXTURE: mixture_pcm} | (quantised if stems else {}), measured


def _write_audio(path: str, pcm: np.ndarray, rate: int, fmt: str) -> str:
    """Encode in memory, hash those bytes, then write them atomically (no read-back)."""
    chunks = _encoded(pcm, rate, fmt)
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    write_bytes(chunks, path)
    return digest.hexdigest()


def _encoded(pcm: np.ndarray, rate: int, fmt: str) -> list:
    """The file's bytes, as buffers; 16-bit mono WAV needs no copy of the samples."""
    if fmt == "wav" and pcm.ndim == 1:
        data = np.ascontiguousarray(pcm, dtype="<i2")
        # The canonical 44-byte header, byte for byte what libsndfile writes for this case.
        header = struct.pack("<4sI4s4sIHHIIHH4sI", b"RIFF", 36 + data.nbytes, b"WAVE", b"fmt ", 16, 1, 1,
                             rate, 2 * rate, 2, 16, b"data", data.nbytes)
        return [header, data]
    buffer = io.BytesIO()
    sf.write(buffer, pcm, rate, subtype="PCM_16", format=FORMATS[fmt])
    return [buffer.getbuffer()]


def _tasks_by_source(rows: pd.DataFrame, min_size: int = 8, max_size: int = 64) -> list[list[int]]:
    """Row positions in worker tasks that keep each noise source's mixtures together.

    Noise recordings (minutes long in MUSAN) are shared by many mixtures: rendering each
    one's mixtures in one task decodes it once, instead of once per worker, or once per
    mixture when it falls out of the decoded-audio cache. Outputs do not depend on this.
    """
    ordered = rows[[S.NOISE_SOURCE_ID, S.CLEAN_SOURCE_ID]].astype(str).sort_values(
        [S.NOISE_SOURCE_ID, S.CLEAN_SOURCE_ID], kind="stable")
    tasks: list[list[int]] = []
    previous = None
    for position, noise in zip(ordered.index, ordered[S.NOISE_SOURCE_ID]):
        if not tasks or len(tasks[-1]) >= max_size or (len(tasks[-1]) >= min_size and noise != previous):
            tasks.append([])
        tasks[-1].append(int(position))
        previous = noise
    return tasks


def _remove_temporaries(out: Path) -> None:
    """Half-written files of an interrupted run (they never carry a final name)."""
    for path in out.rglob(".*.tmp"):
        path.unlink(missing_ok=True)


def _current_renders(done: dict[str, list[dict]], keys: dict[str, str],
                     manifest_ids: set[str]) -> tuple[dict, list[dict]]:
    """The journal's renders still valid for this run's rows (same key), and the records whose
    files are outdated: of a row whose key changed, or of a mixture no longer in the manifest."""
    current, outdated = {}, []
    for mid, records in done.items():
        if mid not in keys:  # another split's row (``--split``), or gone from the manifest
            outdated += records if mid not in manifest_ids else []
            continue
        valid = [r for r in records if r.get(S.RENDER_KEY) == keys[mid]]
        outdated += [r for r in records if r.get(S.RENDER_KEY) != keys[mid]]
        if valid:
            current[mid] = valid
    return current, outdated


def _remove_outdated(out: Path, outdated: list[dict], keys: dict[str, str], fmt: str, stems: set[str]) -> None:
    """Delete the outdated files this run will not overwrite (a mixture no longer in the
    manifest, a file of another format, a stem this run does not write): only files this
    renderer wrote, as its journal says; one line each on stderr. A changed row rendered to
    the same path is simply rewritten."""
    import sys

    for record in outdated:
        path = out / record[S.OUTPUT_PATH]
        if record[S.MIXTURE_ID] not in keys:
            why = "its mixture is no longer in the manifest"
        elif not record[S.OUTPUT_PATH].endswith(f".{fmt}"):
            why = f"its row is rendered to .{fmt} now"
        elif record[S.STEM] not in stems:
            why = f"its row changed and this run writes no {record[S.STEM]} stem"
        else:
            continue
        if path.is_file():
            path.unlink()
            print(f"removed {path}: {why}", file=sys.stderr)


def _read_journal(journal: Path, out: Path) -> dict[str, list[dict]]:
    """Files of earlier runs that are still present: the latest record per mixture and stem."""
    latest: dict[str, dict[str, dict]] = {}
    if not journal.is_file():
        return {}
    for line in journal.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # the last line of a killed run may be cut short
        if (out / record[S.OUTPUT_PATH]).is_file():
            latest.setdefault(record[S.MIXTURE_ID], {})[record[S.STEM]] = record
    return {mid: list(stems.values()) for mid, stems in latest.items()}
