"""Starting a run from another run's finished stage 1 (``dat train --stage1-from RUN``).

Every method runs the same stage 1: same data, same seed, same updates (see
:func:`dat.config.method_stages`). An experiment therefore trains it once per seed and
lets each method continue from it, which is also what makes the methods' comparison
paired. The imported state is the complete ``last.pt`` of the finished stage 1 (weights,
streams, RNG, the selection so far), so the continued run is the run that would have
trained stage 1 itself; its logs, validation predictions and best models are copied in.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from . import checkpoint
from .config import saved_with_defaults
from .errors import DatError

__all__ = ["import_stage1", "STAGE1_KEYS"]

# The config fields stage 1 depends on; the rest (method, stages 2-3, workers) may differ.
STAGE1_KEYS = {"top": ("seed", "model"), "data": ("audio", "render_dir", "batch_size", "eval_batch_size", "labelled_share"),
               "train": ("stage1", "eval_every", "patience", "amp", "deterministic", "log_every")}
COPIED = ("best_stage1.pt", "best.pt", "best_noisy_valid.pt", "log.csv", "valid.csv")


def _stage1_view(config: dict) -> dict:
    view = {key: config[key] for key in STAGE1_KEYS["top"]}
    for section in ("data", "train"):
        view[section] = {key: config[section][key] for key in STAGE1_KEYS[section]}
    return view


def _differences(a: dict, b: dict, prefix: str = "") -> list[str]:
    keys = sorted(set(a) | set(b))
    out = []
    for key in keys:
        if isinstance(a.get(key), dict) and isinstance(b.get(key), dict):
            out += _differences(a[key], b[key], f"{prefix}{key}.")
        elif a.get(key) != b.get(key):
            out.append(f"{prefix}{key}")
    return out


def import_stage1(source: Path, trainer) -> dict:
    """The saved state to continue from, after checking ``source`` ran the same stage 1."""
    last = source / "last.pt"
    if not last.is_file():
        raise DatError(f"--stage1-from {source}: no last.pt (not a dat run directory)")
    saved = checkpoint.load(last, kind="train")
    if saved["progress"]["completed"] != [1]:
        raise DatError(f"--stage1-from {source}: its last.pt is not the end of stage 1 (completed stages "
                       f"{saved['progress']['completed']}); train it with --stage 1")
    ours = trainer.config.to_dict()
    differ = _differences(_stage1_view(saved_with_defaults(saved["config"])), _stage1_view(ours))
    if differ:
        raise DatError(f"--stage1-from {source}: its stage 1 ran with another config ({', '.join(differ[:4])})")
    checkpoint.check_tags(saved["tags"], trainer.tags, str(last))
    info = json.loads((source / "run.json").read_text()) if (source / "run.json").is_file() else {}
    if info.get("stage1_inputs") != trainer.stage1_inputs():
        raise DatError(f"--stage1-from {source}: its stage 1 read other source or clean validation rows "
                       f"(manifest {info.get('manifest', '?')})")
    if len(saved["rng"]) != trainer.ctx.world:
        raise DatError(f"--stage1-from {source}: trained by {len(saved['rng'])} process(es), continued with "
                       f"{trainer.ctx.world}")
    if trainer.ctx.is_main:
        _copy_outputs(source, trainer.run_dir)
    return dict(saved, config=ours, method=trainer.config.method)


def _copy_outputs(source: Path, run_dir: Path) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    for name in COPIED:
        if (source / name).is_file():
            shutil.copyfile(source / name, run_dir / name)
    if (source / "valid_probs").is_dir():
        shutil.copytree(source / "valid_probs", run_dir / "valid_probs", dirs_exist_ok=True)
