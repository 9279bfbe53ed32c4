"""Mixing one manifest row into audio: the code shared by render and the trainer."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from . import dsp, transforms
from . import schema as S
from .audio import DecodedCache
from .manifest import Manifest

__all__ = ["Mixer", "MixResult", "MixedSamples", "mix_segments", "mix_row",
           "mix_at_snr", "is_elementwise"]


class MixedSamples(NamedTuple):
    """What :func:`mix_segments` makes: the scaled stems and the mixture (float32), its fields
    named as the stems of a render (:data:`noisemix.schema.STEMS`)."""

    clean: np.ndarray
    noise: np.ndarray | None   # None for a clean reference row
    mixture: np.ndarray


def mix_segments(clean: np.ndarray, noise: np.ndarray | None, clean_gain: float, noise_gain: float, *,
                 sample_rate: int = 0, noise_transforms: str = transforms.NO_TRANSFORMS,
                 mixture_transforms: str = transforms.NO_TRANSFORMS, guard_peaks: bool = True) -> MixedSamples:
    """The mixing kernel: the one function that turns a row's unscaled segments into samples.

    ``clean`` and ``noise`` are the row's clean segment and its (cropped, looped or
    concatenated: :func:`dsp.fill_noise`) noise segment, not yet scaled. The noise transforms
    act on the unscaled noise; each stem is scaled by its gain in float32; the mixture is
    their float32 sum, then the mixture transforms. The build's clipping guard is in the
    gains; it cannot foresee a mixture transform (a Gain may boost), so under
    ``guard_peaks`` (``--clip-policy scale``) a transformed mixture that peaks above full
    scale is scaled down as a whole here, instead of being clipped when written.

    Without transforms (:func:`is_elementwise`) every output sample depends on its input
    samples only, so the kernel over any window gives that window of the whole: the
    renderer mixes in cache-sized blocks and the trainer mixes only the crop it needs.
    Render, :class:`Mixer`, :class:`noisemix.MixtureDataset` and :func:`mix_at_snr` all
    call this function; ``tests/test_noisemix_kernel.py`` checks they agree to the sample.
    """
    if noise is not None and noise_transforms != transforms.NO_TRANSFORMS:
        noise = transforms.apply(noise_transforms, noise, sample_rate)
    clean = np.multiply(clean, np.float32(clean_gain), dtype=np.float32)
    if noise is None:
        mixture = clean
    else:
        noise = np.multiply(noise, np.float32(noise_gain), dtype=np.float32)
        mixture = np.add(clean, noise, dtype=np.float32)
    if mixture_transforms != transforms.NO_TRANSFORMS:
        mixture = transforms.apply(mixture_transforms, mixture, sample_rate)
        peak = float(np.max(np.abs(mixture))) if mixture.size and guard_peaks else 0.0
        if peak > dsp.PEAK_LIMIT:
            mixture = mixture * np.float32(dsp.peak_guard_scale(peak))
    return MixedSamples(clean, noise, mixture)


def is_elementwise(row) -> bool:
    """True when the row has no transforms: each output sample depends on its input samples only."""
    return row[S.MIXTURE_TRANSFORMS] == transforms.NO_TRANSFORMS and row[S.NOISE_TRANSFORMS] == transforms.NO_TRANSFORMS


def clean_reference_scale(row, level: str) -> float:
    """What turns a row's clean stem into its clip's clean music at the clip's level (see
    :meth:`Mixer.clean_reference`): under ``match-clean`` the SNR's level match is undone,
    otherwise the stem is that music already. ``level``: the manifest's ``spec.level``."""
    if level == "match-clean" and not S.is_clean_reference(row[S.NOISE_SOURCE_ID]):
        return 1.0 / float(dsp.level_match_scale(row[S.SNR_DB]))
    return 1.0


class Mixer:
    """Turns manifest rows into audio at the manifest's sample rate.

    ``cache_dir`` keeps decoded sources on disk (``.npy``, memory-mapped), so each file is
    decoded once across processes and runs.
    """

    def __init__(self, manifest: Manifest, cache_dir: Path | None = None, memory_mb: float = 512,
                 clean_memory_mb: float | None = None):
        self.manifest = manifest
        self.sample_rate = manifest.sample_rate
        self.crossfade_s = float(manifest.spec.get("crossfade_s", dsp.DEFAULT_CROSSFADE_S))
        self.guard_peaks = manifest.spec.get("clip_policy", "scale") == "scale"
        self.level = manifest.spec.get("level", "as-mixed")
        self.cache = DecodedCache(self.sample_rate, cache_dir, memory_mb)
        # With its own (small) budget, a stream of clean sources cannot push out the noise
        # recordings that a render keeps reusing.
        self.clean_cache = self.cache if clean_memory_mb is None else DecodedCache(
            self.sample_rate, cache_dir, clean_memory_mb)
        self._locations: dict[str, tuple[Path, str]] = {}

    def source(self, source_id: str, cache: DecodedCache | None = None) -> np.ndarray:
        """Mono audio of a source at the manifest's sample rate."""
        location = self._locations.get(source_id)
        if location is None:
            location = (self.manifest.source_path(source_id), self.manifest.source_sha256(source_id))
            self._locations[source_id] = location
        return (self.cache if cache is None else cache).get(*location)

    def clean(self, row) -> np.ndarray:
        """The unscaled clean segment of ``row``."""
        return self._clean_window(row, 0, int(row[S.NUM_FRAMES]))

    def noise(self, row) -> np.ndarray | None:
        """The unscaled, untransformed noise segment of ``row``; None for clean rows."""
        return self._noise_window(row, 0, int(row[S.NUM_FRAMES]))

    def clean_reference(self, row, start: int = 0, length: int | None = None) -> np.ndarray:
        """Samples ``[start, start + length)`` of the row's clean segment at its clip's level,
        time-aligned with :meth:`mix` of the same window: the clean music a mixture was made
        from, as a teacher model hears the clip's clean copy. Under ``match-clean`` that is
        the clean stem without the SNR's level match (the clean reference row's gain, unless
        the clipping guard scaled this mixture alone); otherwise the clean stem itself."""
        total = int(row[S.NUM_FRAMES])
        length = total - start if length is None else length
        gain = float(row[S.CLEAN_GAIN]) * clean_reference_scale(row, self.level)
        return np.multiply(self._clean_window(row, start, length), np.float32(gain), dtype=np.float32)

    def _clean_window(self, row, start: int, length: int) -> np.ndarray:
        offset = int(row[S.CLEAN_OFFSET]) + start
        segment = self.source(row[S.CLEAN_SOURCE_ID], self.clean_cache)[offset:offset + length]
        if segment.size != length:
            raise ValueError(f"mixture {row[S.MIXTURE_ID]}: clean segment exceeds its source")
        return segment

    def _noise_window(self, row, start: int, length: int) -> np.ndarray | None:
        """Samples ``[start, start + length)`` of the unscaled, untransformed noise segment."""
        if S.is_clean_reference(row[S.NOISE_SOURCE_ID]):
            return None
        audio = self.source(row[S.NOISE_SOURCE_ID])
        following = [self.source(i) for i in row.get(S.NOISE_NEXT_IDS, ())]
        offset, looped = int(row[S.NOISE_OFFSET]), bool(row[S.NOISE_LOOPED])
        if following:  # a sequence is made whole up to the window, then cut (it is not periodic)
            return dsp.fill_noise(audio, offset, start + length, looped, self.sample_rate, self.crossfade_s,
                              following)[start:]
        return dsp.fill_noise(audio, offset + start, length, looped, self.sample_rate, self.crossfade_s)

    def mixed(self, row, start: int = 0, length: int | None = None) -> MixedSamples:
        """The kernel's stems and mixture of ``row`` (:func:`mix_segments`), or of its window
        ``[start, start + length)``.

        A window of a row without transforms mixes only the samples it needs, so random
        crops of long clips stay cheap; a transformed row is mixed whole, then cut.
        """
        total = int(row[S.NUM_FRAMES])
        length = total - start if length is None else length
        if start < 0 or length < 0 or start + length > total:
            raise ValueError(f"window [{start}, {start + length}) is outside the mixture ({total} samples)")
        if is_elementwise(row):
            return self.mix_segments(row, self._clean_window(row, start, length), self._noise_window(row, start, length))
        whole = self.mix_segments(row, self.clean(row), self.noise(row))
        if (start, length) == (0, total):
            return whole
        return MixedSamples(*(None if x is None else np.ascontiguousarray(x[start:start + length]) for x in whole))

    def mix_segments(self, row, clean: np.ndarray, noise: np.ndarray | None) -> MixedSamples:
        """:func:`mix_segments` with the row's gains and transforms and this manifest's policy."""
        return mix_segments(clean, noise, row[S.CLEAN_GAIN], row[S.NOISE_GAIN], sample_rate=self.sample_rate,
                            noise_transforms=row[S.NOISE_TRANSFORMS], mixture_transforms=row[S.MIXTURE_TRANSFORMS],
                            guard_peaks=self.guard_peaks)

    def stems(self, row) -> tuple[np.ndarray, np.ndarray | None]:
        """Scaled clean and noise stems; their sum (plus mixture transforms) is the mixture."""
        clean, noise, _ = self.mixed(row)
        return clean, noise

    def mix(self, row, start: int = 0, length: int | None = None) -> np.ndarray:
        """The mixture of ``row`` (float32), or its window ``[start, start + length)``."""
        return self.mixed(row, start, length).mixture


def mix_row(manifest: Manifest, row, cache_dir: Path | None = None) -> np.ndarray:
    """Convenience: the mixture of one row as a float32 array (no files written)."""
    return Mixer(manifest, cache_dir).mix(row)


@dataclass(frozen=True)
class MixResult:
    """A mixture and how it was made: the gains a manifest row would store."""

    mixture: np.ndarray      # float32, the clean array's length
    clean_gain: float
    noise_gain: float
    looped: bool             # the noise was shorter than the clean (from ``noise_offset``) and looped


def mix_at_snr(clean: np.ndarray, noise: np.ndarray, snr_db: float, sample_rate: int, *, noise_offset: int = 0,
               snr_definition: str = "rms", level: str = "match-clean", clip_policy: str = "scale",
               crossfade_s: float = dsp.DEFAULT_CROSSFADE_S, headroom_db: float | None = None) -> MixResult:
    """Mix a clean array with a noise array at ``snr_db``, for your own pipelines.

    The definitions are a build's (:mod:`noisemix.spec`): the noise from ``noise_offset`` on,
    looped with the equal-power crossfade when it is too short; the SNR over exactly the
    samples mixed (``rms``) or by BS.1770 loudness (``lufs``); the level policy; the
    clipping guard; gains rounded as a manifest stores them; the same mixing kernel as
    render and the trainer. So the mixture equals, sample for sample, the audio of a
    manifest row with the same inputs, except where the clipping guard acts on the mixture
    itself: here it uses this mixture's exact peaks, a build uses block-level peak bounds
    (never lower). Under ``match-clean`` both are kept ``headroom_db`` (default: a build's)
    below full scale relative to the clean's peak, as a build keeps the clip's clean copy.
    """
    from .spec import BuildSpec

    spec = BuildSpec(level=level, clip_policy=clip_policy, snr_definition=snr_definition, crossfade_s=crossfade_s,
                     **({} if headroom_db is None else {"headroom_db": headroom_db}))  # validates
    clean = np.asarray(clean, dtype=np.float32).reshape(-1)
    noise = np.asarray(noise, dtype=np.float32).reshape(-1)
    if not 0 <= noise_offset < noise.size:
        raise ValueError(f"noise_offset {noise_offset} is outside the noise ({noise.size} samples)")
    looped = noise.size - noise_offset < clean.size
    segment = dsp.fill_noise(noise, noise_offset, clean.size, looped, sample_rate, crossfade_s)
    if snr_definition == "rms":
        clean_power, noise_power = dsp.power(clean), dsp.power(segment)
    else:
        clean_power = 10 ** (dsp.loudness_lufs(clean, sample_rate) / 10)
        noise_power = 10 ** (dsp.loudness_lufs(segment, sample_rate) / 10)
    if not (clean_power > 0 and noise_power > 0 and np.isfinite(clean_power) and np.isfinite(noise_power)):
        raise ValueError("mix_at_snr: the SNR is undefined (clean or noise silent, or shorter than 0.4 s for lufs)")
    clean_gain, noise_gain = (float(g) for g in dsp.gains_for_snr(clean_power, noise_power, snr_db, level))
    if clip_policy == "scale":
        peak = float(np.max(np.abs(mix_segments(clean, segment, clean_gain, noise_gain).mixture))) if clean.size else 0.0
        guard = float(dsp.peak_guard_scale(peak))
        if level == "match-clean":  # the clip's level, as its clean copy has it
            guard = min(guard, float(dsp.headroom_scale(np.max(np.abs(clean)) if clean.size else 0.0, spec.headroom_db)))
        clean_gain, noise_gain = clean_gain * guard, noise_gain * guard
    clean_gain, noise_gain = (float(g) for g in dsp.stable_gains(np.array([clean_gain, noise_gain])))
    return MixResult(mix_segments(clean, segment, clean_gain, noise_gain).mixture, clean_gain, noise_gain, looped)
