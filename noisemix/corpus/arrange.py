"""Seeded per-piece choices: instruments for each part, tempo, and excerpt windows.

Every draw comes from a ``random.Random`` seeded with ``stable_key(seed, piece, what)``,
so a piece's arrangement depends only on the seed and its own name: never on which
other pieces were built, in what order, or in which worker process.
"""

from __future__ import annotations

import random

from ..rng import stable_key

__all__ = ["rng_for", "draw_programs", "draw_folk_programs", "draw_windows", "draw_tempo"]

# family -> (programs for upper parts, programs for the lowest part); GM, 0-based.
ENSEMBLE = {
    "strings": ((40, 41, 48, 49), (42, 43, 48)),
    "brass": ((56, 60, 61), (57, 58, 61)),
    "woodwind": ((68, 71, 73, 69), (70, 71)),
    "piano": ((0, 1, 6), (0, 1, 6)),
    "organ": ((19, 20, 16), (19, 20, 16)),
    "guitar": ((24, 25), (24, 25)),
    "voice": ((52, 53), (52, 53)),
    "mallet": ((11, 12, 13), (12, 11)),
}
# The lowest part may also be given to a bass instrument.
LOW_ONLY = {"bass": (32, 33, 35)}
HOMOGENEOUS_P = 0.3  # share of pieces played by one family (a string quartet, a choir)

# Melody instruments for folk tunes, and what may double the tune an octave below.
FOLK_LEAD = {
    "strings": (40, 110), "woodwind": (73, 74, 75, 78, 109, 71), "organ": (21, 22),
    "guitar": (24, 25, 105), "mallet": (12, 13), "piano": (0,),
}
FOLK_SECOND = {"guitar": (24, 25), "piano": (0, 1), "strings": (42,), "bass": (32,), "organ": (21,)}
FOLK_DOUBLED_P = 0.5


def rng_for(seed: int, *key: object) -> random.Random:
    return random.Random(stable_key(seed, *key))


def draw_programs(seed: int, piece: str, n_parts: int) -> list[int]:
    """One GM program per part (last part = lowest voice) for a piece of the given name."""
    rng = rng_for(seed, piece, "programs")
    families = sorted(ENSEMBLE)
    if rng.random() < HOMOGENEOUS_P:
        family = rng.choice(families)
        upper, low = ENSEMBLE[family]
        return [rng.choice(upper) for _ in range(n_parts - 1)] + [rng.choice(low)]
    programs = [rng.choice(ENSEMBLE[rng.choice(families)][0]) for _ in range(n_parts - 1)]
    low_families = sorted(ENSEMBLE) + sorted(LOW_ONLY)
    family = rng.choice(low_families)
    low = LOW_ONLY[family] if family in LOW_ONLY else ENSEMBLE[family][1]
    return programs + [rng.choice(low)]


def draw_folk_programs(seed: int, piece: str) -> tuple[int, int | None]:
    """(lead program, program doubling an octave below or None)."""
    rng = rng_for(seed, piece, "folk")
    lead_family = rng.choice(sorted(FOLK_LEAD))
    lead = rng.choice(FOLK_LEAD[lead_family])
    if rng.random() >= FOLK_DOUBLED_P:
        return lead, None
    second_family = rng.choice(sorted(f for f in FOLK_SECOND if f != lead_family))
    return lead, rng.choice(FOLK_SECOND[second_family])


def draw_tempo(seed: int, piece: str, low: float, high: float) -> float:
    """Quarter notes per minute for a score that carries no performance tempo of its own."""
    return round(rng_for(seed, piece, "tempo").uniform(low, high), 1)


def draw_windows(seed: int, piece: str, duration: float, count: int,
                 min_len: float = 10.0, max_len: float = 30.0, pref_len: float = 15.0) -> list[tuple[float, float]]:
    """Up to ``count`` non-overlapping (start, end) excerpts, each ``min_len``..``max_len`` s.

    The piece is cut into ``count`` equal spans (fewer when spans would be shorter than
    ``min_len``) and one excerpt is drawn inside each, so excerpts of a long piece
    spread over it. Times are rounded to 10 ms. A piece shorter than ``min_len`` gets none.
    """
    rng = rng_for(seed, piece, "windows")
    count = max(0, min(count, int(duration // min_len)))
    windows = []
    for k in range(count):
        span = duration / count
        length = round(max(min_len, min(rng.uniform(pref_len, max_len), span)), 2)
        start = round(k * span + rng.uniform(0.0, max(0.0, span - length)), 2)
        windows.append((start, round(start + length, 2)))
    return windows
