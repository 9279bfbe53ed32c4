"""Pure numpy signal maths: energy, SNR gains, looping, quantisation (the mixing kernel is
:func:`noisemix.mix.mix_segments`).

SNR definitions (recorded in every manifest as ``spec.snr_definition``):

``rms``
    ``SNR = 10 log10( mean(c**2) / mean(n**2) )`` over the exact clean segment ``c`` and
    noise segment ``n`` that are mixed, after downmix to mono and resampling. The noise
    gain that gives a target SNR (clean gain 1) is
    ``g = sqrt( mean(c**2) / (mean(n**2) * 10**(SNR/10)) )``.
``lufs``
    ``SNR = L(c) - L(n)`` with ``L`` the ITU-R BS.1770 integrated loudness (pyloudnorm).
    Since loudness is homogeneous in gain, ``g = 10**((L(c) - L(n) - SNR) / 20)``.

Neither is defined when a segment is (near) silent; such segments are never mixed.
"""

from __future__ import annotations

import warnings

import numpy as np

__all__ = [
    "SILENCE_DBFS", "power", "measured_energy", "measured_power", "power_db", "noise_gain_for_snr", "snr_db", "loop_to_length",
    "crossfade_length", "loop_cycle", "peak_guard_scale", "level_match_scale", "gains_for_snr", "stable_gains", "to_pcm16",
    "from_pcm16", "loudness_lufs", "noise_segment", "fill_noise",
]

# A segment quieter than this mean power (dBFS) has no meaningful SNR.
SILENCE_DBFS = -70.0
# Clipping guard: the summed mixture's peak is kept at or below this (1 - 2**-15 full scale).
PEAK_LIMIT = 32767.0 / 32768.0
DEFAULT_CROSSFADE_S = 0.01


def power(x: np.ndarray) -> float:
    """Mean power ``mean(x**2)``, accumulated in float64 without BLAS.

    Builds use this: its result does not depend on a BLAS library's summation order.
    """
    x = np.asarray(x)
    return float(np.einsum("i,i->", x, x, dtype=np.float64) / x.size) if x.size else 0.0


def measured_energy(x: np.ndarray, block: int = 1 << 16) -> float:
    """Sum of squares for measurements: float32 sums over blocks, added in float64
    (~1e-6 relative, 1e-5 dB).

    One pass without temporaries (``einsum``), and no BLAS: its threads spin against
    render workers on small machines.
    """
    x = np.asarray(x).reshape(-1)
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float32)
    return sum(float(np.einsum("i,i->", part, part)) for part in (x[i:i + block] for i in range(0, x.size, block)))


def measured_power(x: np.ndarray) -> float:
    """Mean power for measurements (see :func:`measured_energy`)."""
    x = np.asarray(x)
    return measured_energy(x) / x.size if x.size else 0.0


def power_db(p) -> np.ndarray:
    """Mean power in dBFS; -inf for zero power."""
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(np.asarray(p, dtype=np.float64))


def noise_gain_for_snr(clean_power, noise_power, snr_db) -> np.ndarray:
    """Linear noise gain that gives ``snr_db`` against unit-gain clean (``rms`` definition)."""
    clean_power = np.asarray(clean_power, dtype=np.float64)
    noise_power = np.asarray(noise_power, dtype=np.float64)
    return np.sqrt(clean_power / (noise_power * 10.0 ** (np.asarray(snr_db, dtype=np.float64) / 10.0)))


def snr_db(clean: np.ndarray, noise: np.ndarray) -> float:
    """Measured ``rms`` SNR of two (scaled) stems in dB."""
    return float(power_db(measured_power(clean)) - power_db(measured_power(noise)))


def crossfade_samples(sample_rate: int, crossfade_s: float = DEFAULT_CROSSFADE_S) -> int:
    return int(round(crossfade_s * sample_rate))


def crossfade_length(noise_frames: int, sample_rate: int, crossfade_s: float = DEFAULT_CROSSFADE_S) -> int:
    """Crossfade used when looping a noise of ``noise_frames`` samples (at most a quarter of it)."""
    return int(min(crossfade_samples(sample_rate, crossfade_s), noise_frames // 4))


def loop_to_length(noise: np.ndarray, length: int, offset: int, crossfade: int) -> np.ndarray:
    """``length`` samples of ``noise`` repeated endlessly, starting ``offset`` samples in.

    Each repetition overlaps the previous one by ``crossfade`` samples with an
    equal-power (sine/cosine) crossfade, so the loop has no click and keeps its power.
    The period of the loop is ``len(noise) - crossfade``: the loop is :func:`loop_cycle`
    over and over.
    """
    cycle = loop_cycle(noise, crossfade)
    period = cycle.size
    offset %= period
    reps = -(-(offset + length) // period)
    return np.tile(cycle, reps)[offset:offset + length]


def loop_cycle(noise: np.ndarray, crossfade: int) -> np.ndarray:
    """One period of the loop of ``noise`` (float32): the recording without its last
    ``crossfade`` samples, whose start is that tail fading out over the head fading in."""
    noise = np.asarray(noise, dtype=np.float32)
    n = noise.size
    if n == 0:
        raise ValueError("cannot loop an empty signal")
    period = n - crossfade
    if period <= 0:
        raise ValueError(f"crossfade {crossfade} must be shorter than the signal ({n} samples)")
    cycle = noise[:period].copy()
    if crossfade:
        fade_in, fade_out = _equal_power_fades(crossfade)
        cycle[:crossfade] = (noise[period:] * fade_out + noise[:crossfade] * fade_in).astype(np.float32)
    return cycle


def _equal_power_fades(length: int) -> tuple[np.ndarray, np.ndarray]:
    t = (np.arange(length, dtype=np.float64) + 0.5) / length
    return np.sin(0.5 * np.pi * t), np.cos(0.5 * np.pi * t)


def concat_overlaps(sizes, crossfade: int) -> np.ndarray:
    """Samples by which each piece of a concatenation overlaps the previous one (0 for
    the first): ``crossfade``, but at most a quarter of either piece."""
    sizes = np.asarray(sizes, dtype=np.int64)
    overlaps = np.zeros(sizes.size, dtype=np.int64)
    if sizes.size > 1:
        overlaps[1:] = np.minimum(crossfade, np.minimum(sizes[:-1], sizes[1:]) // 4)
    return overlaps


def concat_to_length(pieces, length: int, crossfade: int) -> np.ndarray:
    """``length`` samples of ``pieces`` played one after another, each joined to the
    previous one with an equal-power crossfade (:func:`concat_overlaps`), as a loop is
    joined to itself. The pieces must cover ``length``; later ones may go unused."""
    out = np.empty(length, dtype=np.float32)
    overlaps = concat_overlaps([p.size for p in pieces], crossfade)
    position = 0
    for piece, overlap in zip(pieces, overlaps):
        if position >= length:
            break
        piece = np.asarray(piece, dtype=np.float32)
        if overlap:
            fade_in, fade_out = _equal_power_fades(int(overlap))
            joint = slice(position - overlap, position)
            out[joint] = (out[joint] * fade_out + piece[:overlap] * fade_in).astype(np.float32)
        count = min(piece.size - overlap, length - position)
        out[position:position + count] = piece[overlap:overlap + count]
        position += count
    if position < length:
        raise ValueError(f"the noise pieces cover {position} of the {length} samples needed")
    return out


def peak_guard_scale(peak, limit: float = PEAK_LIMIT):
    """Scale that brings a mixture with absolute ``peak`` to at most ``limit`` (1 if it fits)."""
    peak = np.asarray(peak, dtype=np.float64)
    return np.where(peak <= limit, 1.0, limit / np.maximum(peak, 1e-30))


def headroom_scale(peak, headroom_db: float):
    """Scale that brings ``peak`` to at most ``headroom_db`` below the clipping limit."""
    return peak_guard_scale(np.asarray(peak, dtype=np.float64) * 10.0 ** (headroom_db / 20.0))


def level_match_scale(snr_db):
    """Gain on clean and noise that keeps a mixture at its clean segment's level.

    Clean ``c`` (gain 1) plus noise at ``snr_db`` has power ``P_c (1 + 10**(-snr/10))`` when
    the two are uncorrelated (independent recordings), so scaling both by
    ``(1 + 10**(-snr/10))**-0.5`` gives the mixture the clean segment's power: from the
    metadata alone, without decoding. The residual is the segments' correlation (measured
    in the tests). A clean reference row (NaN SNR) keeps gain 1.
    """
    snr = np.asarray(snr_db, dtype=np.float64)
    return np.where(np.isnan(snr), 1.0, 1.0 / np.sqrt(1.0 + 10.0 ** (-np.nan_to_num(snr) / 10.0)))


def gains_for_snr(clean_power, noise_power, snr_db, level: str = "match-clean") -> tuple[np.ndarray, np.ndarray]:
    """``(clean_gain, noise_gain)`` for ``snr_db`` under a level policy, before any clipping guard:
    clean at gain 1 with the noise on top (``as-mixed``), or both scaled by
    :func:`level_match_scale` (``match-clean``)."""
    noise_gain = noise_gain_for_snr(clean_power, noise_power, snr_db)
    clean_gain = np.ones_like(noise_gain)
    if level == "match-clean":
        scale = level_match_scale(snr_db)
        clean_gain, noise_gain = clean_gain * scale, noise_gain * scale
    return clean_gain, noise_gain


def stable_gains(gains: np.ndarray) -> np.ndarray:
    """Gains rounded to 10 significant digits.

    Float sums over a segment may differ in their last bits between CPUs and numpy builds;
    rounding keeps the stored gains (and so the manifest) identical across machines, at a
    cost of 1e-9 dB.
    """
    gains = np.asarray(gains, dtype=np.float64)
    with np.errstate(divide="ignore"):
        digits = 9 - np.floor(np.log10(np.where(gains > 0, gains, 1.0))).astype(int)
    scale = 10.0 ** digits
    return np.round(gains * scale) / scale


def to_pcm16(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Float [-1, 1) to int16 by rounding (values beyond full scale saturate), into ``out`` if given."""
    # Scaling by a power of two is exact in float32, so rounding there gives the same integers.
    scaled = np.multiply(x, np.float32(32768.0), dtype=np.float32)
    np.rint(scaled, out=scaled)
    np.clip(scaled, -32768, 32767, out=scaled)
    if out is None:
        return scaled.astype(np.int16)
    np.copyto(out, scaled, casting="unsafe")
    return out


def from_pcm16(x: np.ndarray) -> np.ndarray:
    return np.multiply(x, np.float32(2.0**-15), dtype=np.float32)


def loudness_lufs(x: np.ndarray, sample_rate: int) -> float:
    """BS.1770 integrated loudness in LUFS (pyloudnorm); -inf for silence or < 0.4 s."""
    import pyloudnorm

    x = np.asarray(x, dtype=np.float64)
    if x.size < int(0.4 * sample_rate) + 1:
        return float("-inf")
    # pyloudnorm warns (and divides by zero) on silence; -inf is the answer we want then.
    with np.errstate(divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(pyloudnorm.Meter(sample_rate).integrated_loudness(x))


def noise_segment(noise: np.ndarray, offset: int, length: int, looped: bool, crossfade: int) -> np.ndarray:
    """The unscaled noise a row mixes: a crop, or a crossfaded loop for short noise."""
    if looped:
        return loop_to_length(noise, length, offset, crossfade)
    segment = noise[offset:offset + length]
    if segment.size != length:
        raise ValueError(f"noise segment [{offset}, {offset + length}) exceeds the noise ({noise.size} samples)")
    return segment


def fill_noise(noise: np.ndarray, offset: int, length: int, looped: bool, sample_rate: int, crossfade_s: float,
               following=()) -> np.ndarray:
    """:func:`noise_segment` with a build's crossfade: a loop's is at most a quarter of its
    recording; with ``following`` recordings (``--noise-fill concat``) the noise from
    ``offset`` on is followed by each of them whole, crossfaded one into the next
    (:func:`concat_overlaps` shortens each joint)."""
    if len(following):
        return concat_to_length([noise[offset:], *following], length, crossfade_samples(sample_rate, crossfade_s))
    return noise_segment(noise, offset, length, looped, crossfade_length(noise.size, sample_rate, crossfade_s))
