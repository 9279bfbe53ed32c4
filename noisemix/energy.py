"""Per-source energy and peak indexes: segment power and peak bounds without decoding.

For a source resampled to the build's sample rate, the index holds cumulative sums of
squared samples at ``block`` resolution and maximum absolute values per ``block *
PEAK_GROUP`` samples. A segment whose start and end fall on block boundaries gets its
exact mean power from two look-ups; other segments are computed from the samples.
Indexes are cached on disk by (file sha256, sample rate, block).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import dsp
from .audio import load_mono
from .io import atomic_path

__all__ = ["SourceIndex", "IndexRequest", "source_index", "block_size_for", "PEAK_GROUP"]

PEAK_GROUP = 32


def block_size_for(segment_frames: int | None) -> int:
    """The largest divisor of the segment length in [64, 1024] (256 when there is none)."""
    if segment_frames:
        for block in range(1024, 63, -1):
            if segment_frames % block == 0:
                return block
    return 256


@dataclass
class SourceIndex:
    """Concatenated indexes of many sources; source ``i`` owns slices from its bases."""

    block: int
    frames: np.ndarray          # resampled length per source
    energy_base: np.ndarray     # start of the source's cumulative energies in ``energy``
    energy: np.ndarray          # per source: [0, e0, e0+e1, ...] (float64)
    peak_base: np.ndarray
    peak: np.ndarray            # per source: max |x| per PEAK_GROUP blocks, then a 0 sentinel

    def power(self, positions, offsets, lengths) -> np.ndarray:
        """Exact mean power of block-aligned segments (NaN where not aligned)."""
        offsets, lengths = np.asarray(offsets, np.int64), np.asarray(lengths, np.int64)
        ends = offsets + lengths
        frames = self.frames[positions]
        aligned = (offsets % self.block == 0) & ((ends % self.block == 0) | (ends == frames)) & (ends <= frames)
        first = self.energy_base[positions] + np.where(aligned, offsets // self.block, 0)
        last = self.energy_base[positions] + np.where(aligned, -(-ends // self.block), 0)
        total = self.energy[last] - self.energy[first]
        return np.where(aligned, total / np.maximum(lengths, 1), np.nan)

    def peak_bound(self, positions, offsets, lengths) -> np.ndarray:
        """An upper bound of max |x| over each segment (exact to PEAK_GROUP blocks)."""
        group = self.block * PEAK_GROUP
        offsets, lengths = np.asarray(offsets, np.int64), np.asarray(lengths, np.int64)
        starts = self.peak_base[positions] + offsets // group
        stops = self.peak_base[positions] + (offsets + lengths - 1) // group + 1
        bounds = np.ravel(np.column_stack([starts, stops]))
        return np.maximum.reduceat(self.peak, bounds)[::2] if len(bounds) else np.zeros(0)

    @classmethod
    def concatenate(cls, block: int, parts: list[tuple[int, np.ndarray, np.ndarray]]) -> "SourceIndex":
        frames = np.array([p[0] for p in parts], dtype=np.int64)
        energy_sizes = np.array([p[1].size for p in parts], dtype=np.int64)
        peak_sizes = np.array([p[2].size for p in parts], dtype=np.int64)
        return cls(
            block=block, frames=frames,
            energy_base=np.concatenate([[0], np.cumsum(energy_sizes)[:-1]]).astype(np.int64),
            energy=np.concatenate([p[1] for p in parts]) if parts else np.zeros(0),
            peak_base=np.concatenate([[0], np.cumsum(peak_sizes)[:-1]]).astype(np.int64),
            peak=np.concatenate([p[2] for p in parts]) if parts else np.zeros(0, np.float32),
        )


def compute_index(audio: np.ndarray, block: int) -> tuple[int, np.ndarray, np.ndarray]:
    """(frames, cumulative block energies with a leading 0, group peaks + sentinel)."""
    frames = audio.size
    padded = np.zeros(-(-frames // block) * block, dtype=np.float64)
    padded[:frames] = audio
    blocks = padded.reshape(-1, block)
    energy = np.concatenate([[0.0], np.cumsum(np.einsum("ij,ij->i", blocks, blocks))])
    group = block * PEAK_GROUP
    padded_peak = np.zeros(-(-frames // group) * group, dtype=np.float32)
    padded_peak[:frames] = np.abs(audio)
    peak = np.concatenate([padded_peak.reshape(-1, group).max(axis=1), [0.0]]).astype(np.float32)
    return frames, energy, peak


@dataclass(frozen=True)
class IndexRequest:
    """Which index a build needs: scanning computes it while the file is decoded anyway."""

    sample_rate: int
    block: int
    directory: Path

    def path(self, sha256: str) -> Path:
        return self.directory / sha256[:2] / f"{sha256}-{self.sample_rate}-{self.block}.npz"

    def store(self, sha256: str, mono: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
        frames, energy, peak = compute_index(mono, self.block)
        with atomic_path(self.path(sha256)) as tmp:
            with open(tmp, "wb") as handle:
                np.savez(handle, frames=frames, energy=energy, peak=peak)
        return frames, energy, peak


def source_index(path: Path, sha256: str, request: IndexRequest) -> tuple[int, np.ndarray, np.ndarray]:
    """The index of one source: from the index cache, else decoded once (and not kept:
    a build needs samples only for the few segments its index cannot answer)."""
    cached = request.path(sha256)
    if cached.is_file():
        try:
            with np.load(cached) as data:
                return int(data["frames"]), data["energy"], data["peak"]
        except (OSError, ValueError, KeyError):
            pass  # rebuilt below
    return request.store(sha256, load_mono(path, request.sample_rate))


def segment_energies(audio: np.ndarray, offsets, lengths, looped, crossfade: int, block: int = 256) -> np.ndarray:
    """Sum of squares of many segments of one recording, without materialising them.

    Segment ``i`` is ``audio[offsets[i]:offsets[i] + lengths[i]]`` or, where ``looped[i]``,
    ``lengths[i]`` samples of the recording's crossfaded loop from ``offsets[i]`` on
    (:func:`noisemix.dsp.loop_to_length`): a partial period, whole periods and a partial
    period again. Each range is summed from per-block sums of squares (pairwise, float64)
    plus the partial blocks at its ends, so a build's cost no longer grows with the
    length of every segment. As accurate as summing the materialised segment: over random
    crops and loops both were within 1e-14 of the exact sum (math.fsum; worst 5.3e-15 here,
    8.2e-15 for the materialised sum; ``tests/test_noisemix_build.py`` holds it to 2e-14),
    so the gains a build stores, rounded to 10 digits, do not move.
    """
    offsets, lengths = np.asarray(offsets, np.int64), np.asarray(lengths, np.int64)
    looped = np.asarray(looped, bool)
    energies = np.zeros(offsets.size)
    if not looped.all():
        crop = _RangeEnergy(np.asarray(audio, np.float32), block)
        energies[~looped] = crop.sum(offsets[~looped], offsets[~looped] + lengths[~looped])
        del crop
    if looped.any():
        cycle = _RangeEnergy(dsp.loop_cycle(audio, crossfade), block)
        period = cycle.size
        start = offsets[looped] % period
        end = start + lengths[looped]
        whole, rest = np.maximum(end - period, 0) // period, np.maximum(end - period, 0) % period
        first = cycle.sum(start, np.minimum(end, period))
        energies[looped] = first + whole * cycle.sum(np.zeros(1, np.int64), np.full(1, period))[0] \
            + cycle.sum(np.zeros_like(rest), rest)
    return energies


class _RangeEnergy:
    """Sums of squares over ranges of one signal, from block sums and in-block running sums
    (forward for a range's end, backward for its start: no difference of large sums)."""

    def __init__(self, signal: np.ndarray, block: int):
        self.size, self.block = signal.size, block
        blocks = np.zeros(-(-signal.size // block) * block + block)  # one empty block past the end
        blocks[:signal.size] = signal
        blocks = (blocks * blocks).reshape(-1, block)
        self.blocks = blocks
        self.block_sums = blocks.sum(axis=1)                    # pairwise within each block
        self.before = np.cumsum(blocks, axis=1).reshape(-1)     # [block start, i]
        self._after = None

    @property
    def after(self) -> np.ndarray:
        """Running sums over ``[i, block end)``; only ranges that start inside a block need them."""
        if self._after is None:
            self._after = np.cumsum(self.blocks[:, ::-1], axis=1)[:, ::-1].reshape(-1)
        return self._after

    def _head(self, positions: np.ndarray) -> np.ndarray:
        """Sum over ``[start of its block, position)``."""
        return np.where(positions % self.block > 0, self.before[np.maximum(positions - 1, 0)], 0.0)

    def _tail(self, positions: np.ndarray) -> np.ndarray:
        """Sum over ``[position, end of its block)`` (0 at a block start)."""
        inside = positions % self.block > 0
        return np.where(inside, self.after[positions], 0.0) if inside.any() else np.zeros(positions.size)

    def sum(self, starts: np.ndarray, stops: np.ndarray) -> np.ndarray:
        starts, stops = np.asarray(starts, np.int64), np.asarray(stops, np.int64)
        if starts.size == 0:
            return np.zeros(0)
        first_full, last_full = -(-starts // self.block), stops // self.block   # whole blocks [first, last)
        # Whole blocks by pairwise reduction; an empty range reads the empty block past the end.
        empty = first_full >= last_full
        sentinel = len(self.block_sums) - 1
        pairs = np.column_stack([np.where(empty, sentinel, first_full), np.where(empty, sentinel, last_full)])
        inner = np.where(empty, 0.0, np.add.reduceat(np.append(self.block_sums, 0.0), pairs.reshape(-1))[::2])
        within_one_block = first_full > last_full
        return np.where(within_one_block, self._tail(starts) - self._tail(stops),
                        self._tail(starts) + inner + self._head(stops))
