"""Decoding, downmix and resampling: one path from a file on disk to model-rate audio.

Every consumer (build, render, the trainer) goes through :func:`load_mono` so the
samples mixed at build time, rendered and fed to a model are identical.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from .cache import cache_limit_bytes, prune_decoded, touch
from .errors import AudioError
from .io import atomic_path

__all__ = ["AudioInfo", "probe", "decode", "load_mono", "resampler_name", "sha256_file"]

RESAMPLE_QUALITY = "VHQ"
MAX_CACHED_ARRAYS = 256  # per DecodedCache, well below the usual limit of 1024 open files


@dataclass(frozen=True)
class AudioInfo:
    num_frames: int
    sample_rate: int
    channels: int

    @property
    def duration_s(self) -> float:
        return self.num_frames / self.sample_rate


def resampler_name() -> str:
    import soxr

    return f"soxr {soxr.__version__} {RESAMPLE_QUALITY}"


@functools.cache
def _resampler_tag() -> str:
    return hashlib.sha256(resampler_name().encode()).hexdigest()[:8]


def _require_file(path: Path) -> None:
    if not Path(path).is_file():
        raise AudioError(path, why_not_a_file(Path(path)))


def why_not_a_file(path: Path) -> str:
    """What stands where a regular file was expected, in a few words."""
    try:
        os.stat(path)
    except OSError as exc:
        if path.is_symlink():
            if exc.errno == errno.ELOOP:
                return "a symbolic link loop"
            return f"a symbolic link to a missing file ({os.readlink(path)})"
        return "file not found" if isinstance(exc, FileNotFoundError) else f"unreadable ({exc.strerror or exc})"
    return "a folder, not a file" if path.is_dir() else "not a regular file (a device, socket or pipe)"


def _open_problem(path: Path) -> str | None:
    """The operating system's reason a file cannot be read (libsndfile says only 'System error')."""
    try:
        with open(path, "rb") as handle:
            handle.read(1)
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})"
    return None


def probe(path: Path) -> AudioInfo:
    """Header information; raises :class:`AudioError` for unreadable or empty files."""
    _require_file(path)
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise AudioError(path, _open_problem(path) or f"unreadable audio ({_short(exc)})") from None
    if info.frames <= 0:
        raise AudioError(path, "contains no audio frames")
    if info.samplerate <= 0 or info.channels <= 0:
        raise AudioError(path, f"odd format: {info.samplerate} Hz, {info.channels} channel(s)")
    return AudioInfo(int(info.frames), int(info.samplerate), int(info.channels))


# Integer PCM read as integers and scaled here: libsndfile's own conversion to float is
# several times slower, and scaling by a power of two gives the very same float32 values.
_INTEGER_READS = {"PCM_S8": ("int16", 2.0**-15), "PCM_U8": ("int16", 2.0**-15), "PCM_16": ("int16", 2.0**-15),
                  "PCM_24": ("int32", 2.0**-31), "PCM_32": ("int32", 2.0**-31)}


def decode(path: Path) -> tuple[np.ndarray, int]:
    """All frames as float32 ``(frames, channels)`` and the sample rate, checked."""
    _require_file(path)
    try:
        with sf.SoundFile(str(path)) as handle:
            integer = _INTEGER_READS.get(handle.subtype)
            data = handle.read(dtype=integer[0] if integer else "float32", always_2d=True)
            rate = handle.samplerate
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise AudioError(path, f"unreadable audio ({_short(exc)})") from None
    if data.size == 0:
        raise AudioError(path, "contains no audio frames")
    if integer:
        return np.multiply(data, np.float32(integer[1]), dtype=np.float32), int(rate)
    if not np.isfinite(data).all():
        raise AudioError(path, "contains NaN or infinite samples")
    return data, int(rate)


def load_mono(path: Path, sample_rate: int) -> np.ndarray:
    """Decode, average the channels and resample to ``sample_rate`` (float32, 1-d)."""
    return to_mono(*decode(path), sample_rate)


def to_mono(data: np.ndarray, rate: int, sample_rate: int) -> np.ndarray:
    """Decoded ``(frames, channels)`` audio averaged to mono and resampled to ``sample_rate``."""
    mono = data.mean(axis=1, dtype=np.float64).astype(np.float32) if data.shape[1] > 1 else data[:, 0]
    if rate != sample_rate:
        import soxr

        mono = soxr.resample(mono, rate, sample_rate, quality=RESAMPLE_QUALITY).astype(np.float32)
    return np.ascontiguousarray(mono)


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _short(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


class DecodedCache:
    """Mono audio at one sample rate, decoded once per file.

    Keeps recently used arrays in memory (up to ``memory_mb``) and, with ``directory``,
    also on disk as ``.npy`` keyed by the file's sha256, so later processes (render
    workers, data loaders) memory-map them instead of decoding again.
    """

    def __init__(self, sample_rate: int, directory: Path | None = None, memory_mb: float = 512):
        self.sample_rate = int(sample_rate)
        self.directory = Path(directory) if directory else None
        self.budget = int(memory_mb * 2**20)
        self._arrays: OrderedDict[str, np.ndarray] = OrderedDict()
        self._bytes = 0
        self._limit = cache_limit_bytes() if self.directory else None  # $NOISEMIX_CACHE_MAX_GB
        self._disk_bytes: int | None = None  # the folder's size as of this process's last look, plus its writes

    def get(self, path: Path, sha256: str | None = None) -> np.ndarray:
        key = sha256 or str(path)
        if key in self._arrays:
            self._arrays.move_to_end(key)
            return self._arrays[key]
        array = self._from_disk(path, sha256)
        self._remember(key, array)
        return array

    def _from_disk(self, path: Path, sha256: str | None) -> np.ndarray:
        if self.directory is None or sha256 is None:
            return load_mono(path, self.sample_rate)
        # Keyed by content, rate and resampler: a soxr upgrade must not serve old samples.
        cached = self.directory / sha256[:2] / f"{sha256}-{self.sample_rate}-{_resampler_tag()}.npy"
        if cached.is_file():
            try:
                array = np.load(cached, mmap_mode="r")
                touch(cached)  # recently used: the last to go when the cache is over its limit
                return array
            except (ValueError, OSError):
                cached.unlink(missing_ok=True)  # a damaged cache entry is rebuilt
        array = load_mono(path, self.sample_rate)
        with atomic_path(cached) as tmp, open(tmp, "wb") as handle:
            np.save(handle, array)
        if self._limit is not None:
            self._keep_within_limit(cached.stat().st_size)
        return array

    def _keep_within_limit(self, written: int) -> None:
        """Scan the folder at the first write and whenever this process's count says it is
        over the limit (other processes write too: the scan is the truth), not at every file."""
        if self._disk_bytes is None or self._disk_bytes + written > self._limit:
            self._disk_bytes = prune_decoded(self.directory, self._limit)[2]
        else:
            self._disk_bytes += written

    def _remember(self, key: str, array: np.ndarray) -> None:
        # Memory maps count too: each holds a file descriptor, and a process has few.
        self._arrays[key] = array
        self._bytes += array.nbytes
        while (self._bytes > self.budget or len(self._arrays) > MAX_CACHED_ARRAYS) and len(self._arrays) > 1:
            _, old = self._arrays.popitem(last=False)
            self._bytes -= old.nbytes
