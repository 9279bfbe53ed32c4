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
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from . import dsp, transforms
from . import schema as S
from .errors import NoisemixError
from .io import write_bytes, write_parquet
from .manifest import frame_to_table, load_manifest
from .mix import Mixer

__all__ = ["render_manifest", "parse_shard", "renders_file"]

FORMATS = {"flac": "FLAC", "wav": "WAV"}


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
    done = _read_journal(journal, out)
    rows = manifest.mixtures.iloc[shard[0]::shard[1]]
    if split is not None:
        rows = rows[rows[S.SPLIT] == split]
    needed = {"mixture", "clean"} if stems else {"mixture"}
    finished = [mid in done and needed <= {r[S.STEM] for r in done[mid]} for mid in rows[S.MIXTURE_ID]]
    tasks = _tasks_by_source(rows[~np.array(finished, dtype=bool)])
    for name in rows[S.SPLIT].unique():
        (out / name).mkdir(exist_ok=True)
    job = _Job(str(manifest.directory), {k: str(v) for k, v in manifest.roots.items()}, str(out), stems, fmt, loudness,
               str(cache_dir) if cache_dir else None)
    bar = tqdm(total=len(rows), initial=len(rows) - sum(map(len, tasks)), desc="render", unit="mix", disable=not progress)
    with open(journal, "a", encoding="utf-8") as log:
        for records in _run(job, tasks, workers):
            log.writelines(json.dumps(record) + "\n" for record in records)
            log.flush()
            done[records[0][S.MIXTURE_ID]] = records
            bar.update()
    bar.close()
    order = {mid: i for i, mid in enumerate(rows[S.MIXTURE_ID])}
    table = pd.DataFrame([r for mid in order for r in done.get(mid, [])], columns=S.RENDERS_SCHEMA.names)
    write_parquet(frame_to_table(table, S.RENDERS_SCHEMA), out / renders_file(shard))
    return table


class _Job:
    """What a worker needs to render rows; cheap to pickle, builds its Mixer once."""

    def __init__(self, manifest_dir, roots, out, stems, fmt, loudness, cache_dir):
        self.manifest_dir, self.roots, self.out = manifest_dir, roots, out
        self.stems, self.fmt, self.loudness, self.cache_dir = stems, fmt, loudness, cache_dir
        self._mixer = None

    def mixer(self) -> Mixer:
        if self._mixer is None:
            manifest = load_manifest(self.manifest_dir, {k: Path(v) for k, v in self.roots.items()})
            self._mixer = Mixer(manifest, Path(self.cache_dir) if self.cache_dir else None)
            # Plain per-column arrays: a row is a few array look-ups, not a pandas Series.
            self._columns = {name: manifest.mixtures[name].to_numpy(object) for name in S.MIXTURES_SCHEMA.names}
        return self._mixer

    def row(self, position: int) -> dict:
        self.mixer()
        return {name: values[position] for name, values in self._columns.items()}

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k not in ("_mixer", "_columns")} | {"_mixer": None}


_WORKER_JOB: _Job | None = None


def _init_worker(job: _Job) -> None:
    global _WORKER_JOB
    _WORKER_JOB = job
    _reuse_freed_memory()


def _reuse_freed_memory() -> None:
    """Let glibc's malloc keep freed clip-sized buffers instead of unmapping them.

    Each clip allocates and frees several arrays of about 1 MB. By default glibc maps and
    unmaps them every time, and the next clip page-faults them back in: that took a third of
    a render's CPU time on 2 cores (see benchmarks/bench_render.py). The setting holds
    for the rest of the process (up to 128 MB of freed memory stays with it). Other C
    libraries are left as they are.
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
    if workers <= 1 or len(tasks) <= 1:
        _reuse_freed_memory()
        for positions in tasks:
            for position in positions:
                yield render_row(job, position)
        return
    with ProcessPoolExecutor(max_workers=workers, initializer=_init_worker, initargs=(job,)) as pool:
        for results in pool.map(_render_in_worker, tasks):
            yield from results


def render_row(job: _Job, position: int) -> list[dict]:
    """Render one mixture row (and stems); return its renders-table records."""
    mixer = job.mixer()
    row = job.row(position)
    rate = mixer.sample_rate
    clean, noise = mixer.stems(row)
    mixture_pcm = dsp.to_pcm16(mixer.mixture_of_stems(row, clean, noise))
    transformed = row[S.MIXTURE_TRANSFORMS] != transforms.NO_TRANSFORMS
    stems = _quantised_stems(clean, noise) if job.stems or (noise is not None and transformed) else {}
    measured = _measured_snr(clean, noise, mixture_pcm, stems, transformed)
    outputs = [("mixture", mixture_pcm)] + (list(stems.items()) if job.stems else [])
    records = []
    for stem, pcm in outputs:
        name = f"{row[S.SPLIT]}/{row[S.MIXTURE_ID]}{'' if stem == 'mixture' else '.' + stem}.{job.fmt}"
        records.append({
            S.MIXTURE_ID: row[S.MIXTURE_ID], S.STEM: stem, S.OUTPUT_PATH: name,
            S.SHA256: _write_audio(Path(job.out) / name, pcm, rate, job.fmt),
            S.MEASURED_SNR_DB: measured, S.PEAK: max(int(pcm.max()), -int(pcm.min())) / 32768.0 if pcm.size else 0.0,
            S.LOUDNESS_LUFS: dsp.loudness_lufs(dsp.from_pcm16(pcm), rate) if job.loudness else float("nan"),
        })
    return records


def _quantised_stems(clean, noise) -> dict:
    stems = {"clean": dsp.to_pcm16(clean)}
    if noise is not None:
        stems["noise"] = dsp.to_pcm16(noise)
    return stems


def _measured_snr(clean, noise, mixture_pcm, stems: dict, transformed: bool) -> float:
    """SNR of what was written: the clean stem against everything else in the 16-bit mixture.

    With mixture transforms the mixture is no longer clean + noise, so the two stems, as
    quantised to 16 bits, are compared instead.
    """
    if noise is None:
        return float("nan")
    if transformed:
        return dsp.snr_db(stems["clean"], stems["noise"])
    return dsp.snr_db(clean, dsp.from_pcm16(mixture_pcm) - clean)


def _write_audio(path: Path, pcm: np.ndarray, rate: int, fmt: str) -> str:
    """Encode in memory, hash those bytes, then write them atomically (no read-back)."""
    buffer = io.BytesIO()
    sf.write(buffer, pcm, rate, subtype="PCM_16", format=FORMATS[fmt])
    data = buffer.getvalue()
    write_bytes(data, path)
    return hashlib.sha256(data).hexdigest()


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
