"""Checkpoints: written atomically, read with ``weights_only`` (no arbitrary pickles).

Two kinds share one layout:

``last.pt`` (``kind='train'``)
    Everything to resume: FE, LP, DC, optimizers, schedulers, AMP scaler, the progress
    (stage, step, global step, best score so far), each domain stream's position and
    the RNG states, plus the resolved config.
``best.pt`` (``kind='model'``)
    The model selected on the validation split: FE, LP, DC, the architecture config and
    the tag order. This is what ``dat evaluate`` and ``dat tag`` load.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch

from .config import ModelConfig, model_config_from_dict
from .errors import DatError
from .io import atomic_path

__all__ = ["FORMAT", "save", "load", "load_model", "check_architecture", "check_tags", "model_config_of"]

FORMAT = "dat-checkpoint-v1"


def save(state: dict, path: Path) -> None:
    """Write ``state`` to ``path`` through a temporary file and a rename: never half-written."""
    with atomic_path(Path(path)) as tmp:
        torch.save(dict(state, format=FORMAT), tmp)


def load(path: Path, kind: str | None = None) -> dict:
    """Read a dat checkpoint (weights only); a clear error for anything else."""
    path = Path(path)
    if not path.is_file():
        raise DatError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling errors come in many types; all mean "not ours"
        raise DatError(f"{path}: not a readable weights-only checkpoint ({str(exc).splitlines()[0][:200]})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise DatError(f"{path}: not a dat checkpoint (expected format {FORMAT})")
    if kind is not None and state.get("kind") != kind:
        raise DatError(f"{path}: a {state.get('kind')!r} checkpoint, expected {kind!r}")
    return state


def model_config_of(state: dict) -> ModelConfig:
    return model_config_from_dict(state["model_config"])


def check_architecture(state: dict, expected: ModelConfig, where: str) -> None:
    """Refuse a checkpoint whose architecture differs from ``expected``."""
    saved = state.get("model_config")
    if saved != asdict(expected):
        diff = sorted(k for k in asdict(expected) if (saved or {}).get(k) != asdict(expected)[k])
        raise DatError(f"{where}: checkpoint from another architecture (differs in {', '.join(diff) or 'layout'})")


def check_tags(saved: list[str], manifest_tags: list[str], where: str) -> None:
    """The LP's outputs are in the saved tag order; the manifest must use the same vocabulary."""
    if list(saved) != list(manifest_tags):
        extra = sorted(set(manifest_tags) - set(saved))
        gone = sorted(set(saved) - set(manifest_tags))
        detail = (f"manifest adds {extra[:3]}" if extra else f"manifest lacks {gone[:3]}" if gone
                  else "same tags in another order")
        raise DatError(f"{where}: tag vocabulary of the checkpoint ({len(saved)} tags) does not match the "
                       f"manifest's ({len(manifest_tags)} tags): {detail}")


def _as_model(state: dict) -> dict:
    """A ``last.pt``'s networks and metadata in the layout of a ``best.pt``: the model as
    training left it (at its last checkpoint), selected by no rule."""
    progress = state["progress"]
    return {"kind": "model", "model_config": state["model_config"], "tags": state["tags"], "method": state["method"],
            "seed": state["config"]["seed"], "stage": progress["stage"], "step": progress["step"],
            "global_step": progress["global_step"], "valid_pr_auc": float("nan"),
            "selected_by": "none: the last checkpoint of training (last.pt)",
            "fe": state["fe"], "lp": state["lp"], "dc": state["dc"]}


def load_model(path: Path):
    """``(nets, state)`` from a ``best.pt`` (or a ``last.pt``: the model as training left it):
    the networks in eval mode and the saved metadata."""
    from .data import domain_classes
    from .models import Nets

    state = load(path)
    if state.get("kind") == "train":
        state = _as_model(state)
    elif state.get("kind") != "model":
        raise DatError(f"{path}: a {state.get('kind')!r} checkpoint, expected a model or a training checkpoint")
    config = model_config_of(state)
    nets = Nets(config, len(state["tags"]), domain_classes(config.dc_mode))
    try:
        nets.fe.load_state_dict(state["fe"])
        nets.lp.load_state_dict(state["lp"])
        nets.dc.load_state_dict(state["dc"])
    except (RuntimeError, KeyError) as exc:
        raise DatError(f"{path}: weights do not fit the saved architecture ({str(exc).splitlines()[0]})") from None
    return nets.eval(), state
