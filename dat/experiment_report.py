"""The report of an experiment: claims.md / claims.json and the plots, from what has finished."""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path

import numpy as np

from noisemix import load_manifest
from noisemix import schema as S

from .claims import analyse, early_change_rows, load_test_predictions, write_claims

__all__ = ["write_report", "finished_runs", "stage3_curves", "machine"]


def finished_runs(recipe, layout, eval_name: str | None = None) -> dict[str, dict[int, list[Path]]]:
    """``arm -> seed -> [run dir of each fold]`` (one run without folds) of every seed whose
    runs are all evaluated, restricted to seeds every listed arm has."""
    eval_name = eval_name or layout.EVAL_NAME
    runs = {arm: {s: [layout.run(arm, s, f) for f in recipe.folds] for s in recipe.seeds} for arm in recipe.arms}
    runs = {arm: {s: paths for s, paths in by_seed.items()
                  if all((p / eval_name / "predictions.parquet").is_file() for p in paths)}
            for arm, by_seed in runs.items()}
    runs = {arm: by_seed for arm, by_seed in runs.items() if by_seed}
    if not runs:
        return {}
    common = set.intersection(*(set(v) for v in runs.values()))
    return {arm: {s: p for s, p in by_seed.items() if s in common} for arm, by_seed in runs.items()} if common else {}


def _validation_files(run: Path) -> list[Path]:
    """Stage 3's validation predictions in step order (the first is stage 3's step 0)."""
    files = sorted((run / "valid_probs").glob("*-3.npz"))
    return files


def stage3_curves(runs: dict[int, list[Path]], manifest_dir: Path) -> tuple[dict, dict, dict, dict]:
    """``(curves[seed][split] (V, N, T), labels[split], clusters[split], folds[split])`` of one
    arm: the validation rows of every fold side by side (each scored by its fold's run), over
    the validations every fold has."""
    manifest = load_manifest(manifest_dir)
    by_id = manifest.mixtures.set_index(S.MIXTURE_ID)
    infos = [json.loads((run / "valid_probs" / "rows.json").read_text()) for run in next(iter(runs.values()))]
    tags = infos[0]["tags"]
    labels, clusters, folds = {}, {}, {}
    for split in ("clean", "noisy"):
        ids = [i for info in infos for i in info[split]]
        if not ids:
            continue
        subset = by_id.loc[ids]
        labels[split] = np.array([[t in set(row) for t in tags] for row in subset[S.TAGS]], dtype=np.float64)
        clusters[split] = subset[S.CLEAN_SOURCE_ID].to_numpy()
        folds[split] = np.concatenate([np.full(len(info[split]), k) for k, info in enumerate(infos)])
    curves = {}
    for seed, fold_runs in runs.items():
        arrays = [[np.load(f) for f in _validation_files(run)] for run in fold_runs]
        length = min(len(a) for a in arrays)
        curves[seed] = {split: np.stack([np.concatenate([a[v][split] for a in arrays]) for v in range(length)])
                        for split in labels}
    return curves, labels, clusters, (folds if len(infos) > 1 else {})


def _curve_inputs(recipe, layout, runs) -> dict | None:
    """Claim (b)'s stage-3 validation curves of dat and dat-no-dc-pretrain, read once: the
    arguments of :func:`early_change_rows` other than the bootstrap's."""
    a, b = "dat", "dat-no-dc-pretrain"
    if a not in runs or b not in runs:
        return None
    manifest = layout.manifest(recipe.arms[a]["manifest"])
    curves_a, labels, clusters, folds = stage3_curves(runs[a], manifest)
    curves_b, *_ = stage3_curves(runs[b], manifest)
    seeds = sorted(runs[a])
    early = recipe.early_validations
    short = [s for s in seeds for c in (curves_a, curves_b) if c[s]["clean"].shape[0] < early + 1]
    if short:
        print(f"note: seed(s) {sorted(set(short))} stopped before {early} stage-3 validations; claim (b) uses "
              f"the ones that exist", file=sys.stderr)
        early = min(c[s]["clean"].shape[0] for s in seeds for c in (curves_a, curves_b)) - 1
    if early < 1:
        return None
    return dict(curves={a: curves_a, b: curves_b}, labels=labels, clusters=clusters, seeds=seeds, early=early,
                resamples=recipe.resamples, seed=1, margin=recipe.clean_margin, a=a, b=b, folds=folds)


def _fields(values: dict, prefix: str = "") -> list[str]:
    """``{"train": {"lambda_max": 0}}`` -> ``["train.lambda_max=0"]``."""
    out = []
    for key, value in values.items():
        out += _fields(value, f"{prefix}{key}.") if isinstance(value, dict) else [f"{prefix}{key}={value}"]
    return out


def _header(recipe, layout, runs) -> str:
    wall = layout.out / "wall_time.json"
    sessions = json.loads(wall.read_text())["sessions"] if wall.is_file() else []
    seconds = _covered_seconds(sessions)
    config = json.loads((next(iter(next(iter(runs.values())).values()))[0] / "config.json").read_text())
    t = config["train"]
    budget = (f"preset {recipe.preset} ({config['model']['frontend']} FE); stage 1 {t['stage1']['steps']} steps, "
              f"stage 2 {t['stage2']['steps']}, stage 3 {t['stage3']['steps']} (early stop after "
              f"{t['patience']} validations without gain, every {t['eval_every']} steps); batch "
              f"{config['data']['batch_size']} per domain; λ max {t['lambda_max']} over {t['lambda_horizon_steps']} "
              f"steps; stage-3 FE lr x{t['stage3']['fe_lr_scale']}")
    timing = f"{seconds / 60:.1f} min wall" if seconds else "wall time not recorded"
    if len(sessions) > 1:
        minutes = ", ".join(f"{session['seconds'] / 60:.1f}" for session in sessions)
        timing += f" in {len(sessions)} sessions ({minutes} min; overlapping time counted once)"
    own = [f"{arm}: " + ", ".join(_fields(recipe.arms[arm]["config"])) for arm in runs if recipe.arms[arm].get("config")]
    if own:
        budget += "; arms with their own fields: " + "; ".join(own)
    return "\n".join([
        f"# Claims of Joung & Lee, measured: {recipe.name}", "",
        f"Command: `dat experiment {_shown(recipe.path)} --out OUT`; "
        f"arms: {', '.join(f'{a} ({len(s)} seeds{_folds_note(s)})' for a, s in runs.items())}.", "",
        f"Budget: {budget}.", "",
        f"Machine: {machine()}; {recipe.jobs} training processes at a time, 1 thread each; {timing}.",
    ])


def _covered_seconds(sessions: list[dict]) -> float:
    """The time the sessions cover: their sum, less what overlaps (two resumed sessions of one
    experiment may run side by side, e.g. an arm re-run while the rest finishes)."""
    import datetime as dt

    spans = []
    for session in sessions:
        end = dt.datetime.strptime(session["ended"], "%Y-%m-%d %H:%M:%S").timestamp()
        spans.append((end - session["seconds"], end))
    covered, reach = 0.0, float("-inf")
    for start, end in sorted(spans):
        covered += max(0.0, end - max(start, reach))
        reach = max(reach, end)
    return covered


def _folds_note(by_seed: dict[int, list[Path]]) -> str:
    folds = len(next(iter(by_seed.values())))
    return f" x {folds} folds" if folds > 1 else ""


def _shown(path: Path) -> str:
    """The recipe as a user types it: relative to the repository (or working directory) when inside it."""
    import os

    for base in (Path(__file__).resolve().parents[1], Path.cwd()):
        if Path(path).resolve().is_relative_to(base):
            return os.path.relpath(Path(path).resolve(), base)
    return str(path)


def write_report(recipe, layout) -> Path | None:
    """``claims.md`` (selected models) and ``claims-last.md`` (training's end); on a folded
    benchmark these average over folds and ``claims-pooled.md`` / ``claims-last-pooled.md``
    pool the folds' test clips beside them."""
    from .experiment_plots import plot_experiment

    runs = finished_runs(recipe, layout)
    if not runs:
        print("no arm has been evaluated yet: nothing to report", file=sys.stderr)
        return None
    header = _header(recipe, layout, runs)
    folded = recipe.folds != [None]
    complete = finished_runs(recipe, layout, layout.EVAL_LAST_NAME) == runs
    inputs = _curve_inputs(recipe, layout, runs)
    selected = load_test_predictions(runs, layout.EVAL_NAME)
    last_test = load_test_predictions(runs, layout.EVAL_LAST_NAME) if complete else None
    for fold_average in ((True, False) if folded else (False,)):
        suffix = "-pooled" if folded and not fold_average else ""
        curves = early_change_rows(**inputs, fold_average=fold_average) if inputs else []
        options = dict(resamples=recipe.resamples, margin=recipe.clean_margin, fold_average=fold_average)
        result = analyse(selected, curves, **options)
        write_claims(result, layout.out, header + "\n\n" + _selection_line(runs), stem="claims" + suffix)
        if not suffix:
            empty = plot_experiment(result, runs, layout.out)
            if empty:
                print(f"not plotted, nothing to draw (every cell n/a, or no such arm): {', '.join(empty)}",
                      file=sys.stderr)
        if last_test is not None:
            last = analyse(last_test, curves, **options)
            write_claims(last, layout.out, header + "\n\n" + LAST_NOTE, stem="claims-last" + suffix)
    print(f"claims: {layout.out / 'claims.md'}" + (f"; at the end of training: {layout.out / 'claims-last.md'}"
                                                   if complete else ""), file=sys.stderr)
    return layout.out / "claims.md"


LAST_NOTE = ("**Models as training left them** (each run's `last.pt`: stage 3's last checkpoint, after its "
             "steps or its early stop), not the ones the selection rule chose (`claims.md`): every arm at the "
             "same budget, a secondary analysis beside the pre-registered one.")


def _selection_line(runs) -> str:
    """How often the clean-validation rule kept stage 1's model: then the arm's own stage
    3 does not reach the test, and arms of one seed share their test predictions."""
    chosen = [json.loads((run / "selection.json").read_text())["chosen"]["stage"]
              for by_seed in runs.values() for folds in by_seed.values() for run in folds
              if (run / "selection.json").is_file()]
    stage1 = sum(stage == 1 for stage in chosen)
    return (f"Selected checkpoints: the selection rule kept stage 1's model in {stage1} of {len(chosen)} runs "
            f"(those runs are scored on the shared stage-1 model; see `claims-last.md` for every run at the end "
            f"of its training).")


def machine() -> str:
    import torch

    return (f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU cores, Python "
            f"{platform.python_version()}, torch {torch.__version__}")
