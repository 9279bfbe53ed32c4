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

__all__ = ["TransformSpec", "parse_transform", "draw", "apply", "NO_TRANSFORMS"]

NO_TRANSFORMS = "[]"


@dataclass(frozen=True)
class TransformSpec:
    """One audiomentations transform: its class name and constructor arguments."""

    name: str
    init: dict = field(default_factory=dict)

    def make(self):
        import audiomentations

        cls = getattr(audiomentations, self.name, None)
        if cls is None or not isinstance(cls, type):
            raise SpecError(f"transform {self.name!r}: not an audiomentations transform")
        try:
            return cls(**self.init)
        except (TypeError, ValueError) as exc:
            raise SpecError(f"transform {self.name}: {exc}") from None

    def to_dict(self) -> dict:
        return {"name": self.name, "init": dict(self.init)}


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
