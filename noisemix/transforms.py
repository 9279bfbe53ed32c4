"""audiomentations transforms whose drawn parameters live in the manifest row.

A build draws each transform's parameters once, from (seed, mixture key), and stores
``{"name", "init", "parameters"}`` as JSON in the row. Rendering and the trainer replay
exactly those parameters with ``freeze_parameters()``, so no random state is involved
after the build.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field

import numpy as np

from .errors import SpecError

__all__ = ["TransformSpec", "parse_transform", "draw", "apply", "check_json", "NO_TRANSFORMS", "ALLOWED_TRANSFORMS"]

NO_TRANSFORMS = "[]"

# The transforms a build may draw and a manifest may name: they change samples in place from
# plain numeric settings. Left out: those that read files named by their arguments
# (AddBackgroundNoise, AddShortNoises, ApplyImpulseResponse: a manifest from elsewhere would
# make us read local files), run callables or nest transforms (Lambda, Compose, OneOf,
# SomeOf, RepeatPart), and those that change a segment's length (AdjustDuration, Padding,
# Resample, TimeStretch, Trim), which the rows' frame counts could no longer describe.
ALLOWED_TRANSFORMS = frozenset({
    "AddColorNoise", "AddGaussianNoise", "AddGaussianSNR", "AirAbsorption", "Aliasing", "BandPassFilter",
    "BandStopFilter", "BitCrush", "Clip", "ClippingDistortion", "Gain", "GainTransition", "HighPassFilter",
    "HighShelfFilter", "Limiter", "LoudnessNormalization", "LowPassFilter", "LowShelfFilter", "Mp3Compression",
    "Normalize", "PeakingFilter", "PitchShift", "PolarityInversion", "Reverse", "SevenBandParametricEQ", "Shift",
    "TanhDistortion", "TimeMask",
})
PLAIN = (bool, int, float, str, type(None))


@dataclass(frozen=True)
class TransformSpec:
    """One audiomentations transform: its class name and constructor arguments."""

    name: str
    init: dict = field(default_factory=dict)

    def make(self):
        import audiomentations

        check_spec(self.name, self.init)
        cls = getattr(audiomentations, self.name, None)
        if cls is None or not isinstance(cls, type):
            raise SpecError(f"transform {self.name!r}: not an audiomentations transform")
        try:
            return cls(**self.init)
        except (TypeError, ValueError) as exc:
            raise SpecError(f"transform {self.name}: {exc}") from None

    def to_dict(self) -> dict:
        return {"name": self.name, "init": dict(self.init)}


def check_spec(name, init) -> None:
    """A transform a manifest may name, with plain settings; else a one-line :class:`SpecError`."""
    if name not in ALLOWED_TRANSFORMS:
        raise SpecError(f"transform {name!r} is not one noisemix replays (allowed: {', '.join(sorted(ALLOWED_TRANSFORMS))})")
    if not isinstance(init, dict) or not all(isinstance(k, str) and isinstance(v, PLAIN) for k, v in init.items()):
        raise SpecError(f"transform {name}: settings must be plain numbers, booleans or strings")


def check_json(text: str) -> None:
    """A row's stored transforms: a JSON list of allowed transforms with plain settings and parameters."""
    try:
        items = json.loads(text)
    except (json.JSONDecodeError, TypeError):
        raise SpecError("transforms are not valid JSON") from None
    if not isinstance(items, list):
        raise SpecError("transforms must be a JSON list")
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("parameters", {}), dict):
            raise SpecError("each transform must be an object with name, init and parameters")
        check_spec(item.get("name"), item.get("init", {}))
        if not all(isinstance(v, PLAIN) for v in item.get("parameters", {}).values()):
            raise SpecError(f"transform {item.get('name')}: drawn parameters must be plain values")


def parse_transform(text: str) -> TransformSpec:
    """``Name`` or ``Name:key=value,key=value`` (values parsed as JSON when possible)."""
    name, _, args = text.partition(":")
    init = {}
    for item in filter(None, args.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise SpecError(f"transform {text!r}: expected key=value, got {item!r}")
        try:
            init[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            init[key.strip()] = value
    spec = TransformSpec(name.strip(), init)
    spec.make()  # validate now, not halfway through a build
    return spec


def draw(specs: list[TransformSpec], seed: int, key: int, num_frames: int, sample_rate: int) -> str:
    """Draw parameters for ``specs`` from (seed, key); return the JSON to store in a row."""
    if not specs:
        return NO_TRANSFORMS
    drawn = []
    # audiomentations draws from the global `random`/`np.random`; seed them from our
    # key for the draw only and restore them, so no other code sees a changed state.
    saved_random, saved_numpy = random.getstate(), np.random.get_state()
    try:
        for index, spec in enumerate(specs):
            transform = spec.make()
            random.seed(f"{seed}:{key}:{index}")
            np.random.seed((key + 7919 * index + seed) % 2**32)
            transform.randomize_parameters(np.zeros(num_frames, dtype=np.float32), sample_rate)
            drawn.append({**spec.to_dict(), "parameters": _plain(transform.parameters, spec.name)})
    finally:
        random.setstate(saved_random)
        np.random.set_state(saved_numpy)
    return json.dumps(drawn, sort_keys=True)


def apply(transforms_json: str, samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """Replay the transforms stored in a row on ``samples``."""
    if not transforms_json or transforms_json == NO_TRANSFORMS:
        return samples
    for item in json.loads(transforms_json):
        transform = TransformSpec(item["name"], item.get("init", {})).make()
        transform.parameters = dict(item["parameters"])
        transform.freeze_parameters()
        samples = transform(np.ascontiguousarray(samples, dtype=np.float32), sample_rate)
    return samples


def _plain(parameters: dict, name: str) -> dict:
    out = {}
    for key, value in parameters.items():
        if isinstance(value, np.generic):
            value = value.item()
        if not isinstance(value, (bool, int, float, str, type(None))):
            raise SpecError(f"transform {name}: parameter {key} is not a plain value; not supported")
        out[key] = value
    return out
