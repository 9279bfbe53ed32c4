"""The GRL coefficient λ and the learning rate as pure functions of training progress.

Nothing here keeps state: the trainer computes both from the step saved in its
checkpoint, so a resumed run continues the exact same curves.
"""

from __future__ import annotations

import math

__all__ = ["dann_lambda", "grl_coefficient", "lr_factor"]


def dann_lambda(progress: float, gamma: float = 10.0) -> float:
    """The DANN ramp ``λ(p) = 2 / (1 + exp(-γ p)) - 1``: 0 at p = 0, about 1 at p = 1."""
    p = min(max(float(progress), 0.0), 1.0)
    return 2.0 / (1.0 + math.exp(-gamma * p)) - 1.0


def grl_coefficient(step: int, horizon_steps: int, schedule: str, lambda_max: float) -> float:
    """λ at stage-3 ``step``: ``lambda_max`` times 1, or times the DANN ramp over a fixed
    horizon of ``horizon_steps`` (reached and held after it), independent of the stage length."""
    if schedule == "constant":
        return float(lambda_max)
    if schedule == "dann":
        return float(lambda_max) * dann_lambda(step / max(horizon_steps, 1))
    raise ValueError(f"lambda schedule {schedule!r}: expected 'constant' or 'dann'")


def lr_factor(step: int, total_steps: int, warmup_steps: int, schedule: str) -> float:
    """Multiplier on the base learning rate: linear warm-up, then constant or cosine to 0."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        span = max(total_steps - warmup_steps, 1)
        return 0.5 * (1.0 + math.cos(math.pi * min(step - warmup_steps, span) / span))
    raise ValueError(f"lr schedule {schedule!r}: expected 'constant' or 'cosine'")
