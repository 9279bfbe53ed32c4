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
