"""Counter-based randomness: every draw is a pure function of (seed, key, stream).

A build never consumes a shared generator, so the value drawn for one mixture does not
depend on how many mixtures came before it, on worker count or on file-system order.
The mixing function is SplitMix64 (Steele et al., 2014), computed with wrapping uint64
arithmetic, which numpy defines identically on every platform.
"""

from __future__ import annotations

import hashlib

import numpy as np

__all__ = ["stable_key", "stable_keys", "mix_keys", "uniform", "integers", "choice_index"]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MUL1 = np.uint64(0xBF58476D1CE4E5B9)
_MUL2 = np.uint64(0x94D049BB133111EB)


def stable_key(*parts: object) -> int:
    """A 64-bit key from the text of ``parts`` (sha256-based, platform independent)."""
    text = "\x1f".join(str(p) for p in parts).encode("utf-8")
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "little")


def stable_keys(texts) -> np.ndarray:
    """Vectorised :func:`stable_key` of one part each."""
    return np.fromiter((stable_key(t) for t in texts), dtype=np.uint64)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        z = x + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _MUL1
        z = (z ^ (z >> np.uint64(27))) * _MUL2
        return z ^ (z >> np.uint64(31))


def _bits(seed: int, keys, stream: int) -> np.ndarray:
    keys = np.asarray(keys, dtype=np.uint64)
    base = _splitmix64(np.uint64(seed & 0xFFFFFFFFFFFFFFFF) ^ np.uint64(stream * 0x2545F4914F6CDD1D & 0xFFFFFFFFFFFFFFFF))
    return _splitmix64(_splitmix64(keys ^ base))


def mix_keys(keys, numbers) -> np.ndarray:
    """Child keys from parent keys and small integers (e.g. the k-th mixture of a segment)."""
    with np.errstate(over="ignore"):
        return _splitmix64(np.asarray(keys, np.uint64) ^ _splitmix64(np.asarray(numbers, np.uint64) + _GOLDEN))


def uniform(seed: int, keys, stream: int) -> np.ndarray:
    """Uniform floats in [0, 1), one per key, for the named ``stream`` of draws."""
    return (_bits(seed, keys, stream) >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def integers(seed: int, keys, stream: int, high) -> np.ndarray:
    """Uniform integers in [0, high) per key (``high`` scalar or per-key array, >= 1)."""
    high = np.asarray(high, dtype=np.int64)
    if np.any(high < 1):
        raise ValueError("integers: high must be >= 1")
    drawn = np.floor(uniform(seed, keys, stream) * high).astype(np.int64)
    return np.minimum(drawn, high - 1)


def choice_index(seed: int, keys, stream: int, weights) -> np.ndarray:
    """Index into ``weights`` (non-negative, positive sum) drawn per key."""
    weights = np.asarray(weights, dtype=np.float64)
    cumulative = np.cumsum(weights / weights.sum())
    cumulative[-1] = 1.0
    return np.searchsorted(cumulative, uniform(seed, keys, stream), side="right")


def generator(seed: int, key: int) -> np.random.Generator:
    """A numpy Generator for work that needs many draws from one (seed, key)."""
    return np.random.Generator(np.random.Philox(key=[seed & 0xFFFFFFFFFFFFFFFF, key & 0xFFFFFFFFFFFFFFFF]))
