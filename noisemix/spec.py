"""The build spec: every option of a build, validated, and serialisable into manifest.json."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace

from . import schema as S
from .dsp import DEFAULT_CROSSFADE_S
from .errors import SpecError
from .transforms import TransformSpec

__all__ = ["SnrSpec", "BuildSpec", "parse_snr", "SPLIT_OPTIONS", "LEVEL_POLICIES", "DEFAULT_SAMPLE_RATE", "DEFAULT_SEGMENT"]

DEFAULT_SAMPLE_RATE = 22050
DEFAULT_SEGMENT = 59049  # CLMR SampleCNN input: 3**10 samples
SNR_LIMIT_DB = 100.0
# Options a split may set for itself (e.g. train: random -5:20; test: the balanced grid).
SPLIT_OPTIONS = ("design", "snr", "snr_by_category", "mixtures_per_segment", "category_weights")


@dataclass(frozen=True)
class SnrSpec:
    """Target SNRs: a continuous range (``low:high``) or a list of levels."""

    low_db: float | None = None
    high_db: float | None = None
    levels_db: tuple[float, ...] = ()

    @property
    def is_grid(self) -> bool:
        return bool(self.levels_db)

    def text(self) -> str:
        if self.is_grid:
            return ",".join(_fmt(v) for v in self.levels_db)
        return f"{_fmt(self.low_db)}:{_fmt(self.high_db)}"


def _fmt(value: float) -> str:
    return f"{value:g}"


def parse_snr(text: str) -> SnrSpec:
    """``-5:20`` uniform; ``-5:20:5`` the grid -5, 0, ..., 20; ``0,5,10`` a list; ``5`` one level."""
    text = str(text).strip()
    try:
        if "," in text:
            return _levels([float(v) for v in text.split(",") if v.strip()], text)
        parts = [float(v) for v in text.split(":")] if ":" in text else None
    except ValueError:
        raise SpecError(f"--snr {text!r}: expected LOW:HIGH, LOW:HIGH:STEP, a list like 0,5,10 or one number") from None
    if parts is None:
        try:
            return _levels([float(text)], text)
        except ValueError:
            raise SpecError(f"--snr {text!r}: expected LOW:HIGH, LOW:HIGH:STEP, a list like 0,5,10 or one number") from None
    if len(parts) == 2:
        low, high = parts
        _check_range(low, high, text)
        return SnrSpec(low, high)
    if len(parts) == 3:
        low, high, step = parts
        _check_range(low, high, text)
        if step <= 0:
            raise SpecError(f"--snr {text!r}: the step must be positive")
        count = int(math.floor((high - low) / step + 1e-9)) + 1
        return _levels([round(low + i * step, 9) for i in range(count)], text)
    raise SpecError(f"--snr {text!r}: expected LOW:HIGH or LOW:HIGH:STEP")


def _check_range(low: float, high: float, text: str) -> None:
    if not (math.isfinite(low) and math.isfinite(high)) or low > high:
        raise SpecError(f"--snr {text!r}: need finite LOW <= HIGH")
    if abs(low) > SNR_LIMIT_DB or abs(high) > SNR_LIMIT_DB:
        raise SpecError(f"--snr {text!r}: SNRs must lie within +-{SNR_LIMIT_DB:g} dB")


def _levels(values: list[float], text: str) -> SnrSpec:
    if not values:
        raise SpecError(f"--snr {text!r}: no levels given")
    for value in values:
        _check_range(value, value, text)
    return SnrSpec(levels_db=tuple(sorted(set(values))))


# Level policies. match-clean: every mixture keeps its clean segment's level (both gains
# scaled), and a clean segment's rows, clean reference included, sit ``headroom_db`` below
# full scale relative to the segment's own peak (gain 1 when the clean is quiet enough), so
# clean and noisy copies of a clip share one level and loudness gives neither the domain
# nor the SNR away. The headroom comes from the clean segment alone, so a clip's clean
# reference is the same in every build of it, whatever noise its mixtures drew; a mixture
# that would still clip is scaled down alone (counted in the build report). as-mixed: clean
# at gain 1, noise added on top, each mixture scaled down alone when it would clip
# (manifests built before the policy existed; their manifest.json has no 'level').
LEVEL_POLICIES = ("match-clean", "as-mixed")
# Measured on the demo benchmark (peak-normalised music): with 6 dB, 11.5% of noisy rows
# still need the clipping guard on their own (median 2.1 dB more); with 0 dB, 87%.
DEFAULT_HEADROOM_DB = 6.0

# How a noise recording shorter than its clean segment is extended. loop: repeated with a
# crossfade. concat: followed by other recordings of the same category and split (each
# once, in an order drawn from the seed and the row's key), crossfaded one into the next,
# so speech is not one prompt said ten times; recordings repeat only when the pool runs out.
NOISE_FILLS = ("loop", "concat")


@dataclass(frozen=True)
class BuildSpec:
    """Everything that decides the mixtures of a build (recorded in manifest.json)."""

    seed: int = 0
    sample_rate: int = DEFAULT_SAMPLE_RATE
    segment_frames: int | None = DEFAULT_SEGMENT   # None: each clean clip whole
    max_segments_per_clip: int | None = None      # None: every non-overlapping segment
    mixtures_per_segment: int = 1
    design: str = "random"                        # random | grid
    snr: SnrSpec = SnrSpec(-5.0, 20.0)
    snr_by_category: dict = field(default_factory=dict)   # category -> SnrSpec
    category_weights: dict = field(default_factory=dict)  # category -> weight ({} = equal)
    snr_definition: str = "rms"                   # rms | lufs
    clip_policy: str = "scale"                    # scale | none
    level: str = "match-clean"                    # match-clean | as-mixed (see LEVEL_POLICIES)
    headroom_db: float = DEFAULT_HEADROOM_DB      # match-clean: clean peak this far below full scale
    noise_fill: str = "loop"                      # loop | concat (see NOISE_FILLS)
    max_loops: int | None = None                  # a recording repeats at most this often in a row (None: no limit)
    folds: int | None = None                      # K: grouped k-fold (fold 0 tested); None: split_fractions
    clean_references: bool = True
    split_fractions: tuple = (0.8, 0.1, 0.1)
    crossfade_s: float = DEFAULT_CROSSFADE_S       # noise loops and joins (dsp.crossfade_length caps it)
    silence_dbfs: float = -60.0
    max_redraws: int = 20
    noise_transforms: tuple = ()                  # TransformSpec, applied to the noise segment
    mixture_transforms: tuple = ()                # TransformSpec, applied to the summed mixture
    splits: dict = field(default_factory=dict)    # split -> {option in SPLIT_OPTIONS: value} overrides

    def __post_init__(self):
        _require(self.sample_rate >= 1000, "sample_rate", "at least 1000 Hz")
        _require(self.segment_frames is None or self.segment_frames >= 64, "segment", "'full' or at least 64 samples")
        _require(self.max_segments_per_clip is None or self.max_segments_per_clip >= 1, "max_segments_per_clip", ">= 1")
        _require(self.mixtures_per_segment >= 1, "mixtures_per_segment", ">= 1")
        _require(self.design in ("random", "grid"), "design", "'random' or 'grid'")
        _require(self.snr_definition in ("rms", "lufs"), "snr_definition", "'rms' or 'lufs'")
        _require(self.clip_policy in ("scale", "none"), "clip_policy", "'scale' or 'none'")
        _require(self.level in LEVEL_POLICIES, "level", " or ".join(f"'{p}'" for p in LEVEL_POLICIES))
        _require(0 <= self.headroom_db <= 40, "headroom_db", "0..40 dB")
        _require(self.noise_fill in NOISE_FILLS, "noise_fill", " or ".join(f"'{f}'" for f in NOISE_FILLS))
        _require(self.max_loops is None or self.max_loops >= 0, "max_loops", ">= 0")
        _require(self.folds is None or self.folds >= 3, "folds", ">= 3 (one fold tests, one validates, the rest train)")
        _require(len(self.split_fractions) == 3 and all(f >= 0 for f in self.split_fractions)
                 and abs(sum(self.split_fractions) - 1) < 1e-6, "split_fractions", "three non-negative numbers summing to 1")
        _require(0 <= self.crossfade_s <= 1, "crossfade_s", "0..1 seconds")
        _require(-120 <= self.silence_dbfs <= 0, "silence_dbfs", "-120..0 dBFS")
        _require(self.max_redraws >= 0, "max_redraws", ">= 0")
        for category in list(self.snr_by_category) + list(self.category_weights):
            _require(category in S.CATEGORIES, "category", f"one of {', '.join(S.CATEGORIES)} (got {category!r})")
        _require(all(w >= 0 for w in self.category_weights.values()), "category weight", ">= 0")
        if self.design == "grid":
            for category in S.CATEGORIES:
                _require(self.snr_for(category).is_grid, "snr", "a list of levels (e.g. -5:20:5) with --design grid")
        for split, options in self.splits.items():
            _require(split in S.SPLITS, "splits", f"keyed by {', '.join(S.SPLITS)} (got {split!r})")
            unknown = sorted(set(options) - set(SPLIT_OPTIONS))
            _require(not unknown, f"splits.{split}", f"made of {', '.join(SPLIT_OPTIONS)} (unknown: {', '.join(unknown)})")
            try:
                self.for_split(split)
            except SpecError as exc:
                raise SpecError(f"splits.{split}.{exc}") from None

    def snr_for(self, category: str) -> SnrSpec:
        return self.snr_by_category.get(category, self.snr)

    def for_split(self, split: str) -> "BuildSpec":
        """The spec that plans the mixtures of ``split`` (this one with the split's overrides)."""
        options = self.splits.get(split)
        return replace(self, splits={}, **options) if options else self

    def to_dict(self) -> dict:
        data = asdict(self)
        data["snr"] = self.snr.text()
        data["snr_by_category"] = {k: v.text() for k, v in sorted(self.snr_by_category.items())}
        data["split_fractions"] = list(self.split_fractions)
        data["noise_transforms"] = [t.to_dict() for t in self.noise_transforms]
        data["mixture_transforms"] = [t.to_dict() for t in self.mixture_transforms]
        # Absent when unused, so manifests of builds without per-split options are unchanged.
        data.pop("splits")
        if self.noise_fill == "loop":
            data.pop("noise_fill")
        for optional in ("max_loops", "folds"):
            if data[optional] is None:
                data.pop(optional)
        if self.splits:
            data["splits"] = {split: _split_dict(options) for split, options in sorted(self.splits.items())}
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "BuildSpec":
        data = dict(data)
        data["snr"] = parse_snr(data.get("snr", "-5:20"))
        data["snr_by_category"] = {k: parse_snr(v) for k, v in data.get("snr_by_category", {}).items()}
        data["splits"] = {split: _split_from_dict(options) for split, options in data.get("splits", {}).items()}
        data["split_fractions"] = tuple(data.get("split_fractions", (0.8, 0.1, 0.1)))
        data.setdefault("level", "as-mixed")  # recorded since the policy exists; older builds mixed as-is
        for key in ("noise_transforms", "mixture_transforms"):
            data[key] = tuple(TransformSpec(t["name"], t.get("init", {})) for t in data.get(key, []))
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise SpecError(f"unknown build option(s): {', '.join(sorted(unknown))}")
        return cls(**data)


def _split_dict(options: dict) -> dict:
    data = dict(options)
    if "snr" in data:
        data["snr"] = data["snr"].text()
    if "snr_by_category" in data:
        data["snr_by_category"] = {k: v.text() for k, v in sorted(data["snr_by_category"].items())}
    return dict(sorted(data.items()))


def _split_from_dict(data: dict) -> dict:
    options = dict(data)
    if "snr" in options:
        options["snr"] = parse_snr(options["snr"])
    if "snr_by_category" in options:
        options["snr_by_category"] = {k: parse_snr(v) for k, v in options["snr_by_category"].items()}
    return options


def _require(ok: bool, name: str, allowed: str) -> None:
    if not ok:
        raise SpecError(f"{name}: must be {allowed}")
