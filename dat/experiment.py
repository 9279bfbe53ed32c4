"""``dat experiment RECIPE.toml --out DIR``: the paper's claims tested in one resumable command.

The recipe names the manifests to build (``noisemix build`` arguments on the demo
corpus), the arms (a method trained on a manifest), the seeds and the budget. The
experiment then runs, as separate processes, ``jobs`` at a time:

1. every manifest is built (and checked identical to a committed one where the recipe says so);
2. per seed, one stage 1 (FE + LP on clean music), shared by every arm of that seed through
   ``dat train --stage1-from`` (all methods start from the same stage 1, so arms are paired);
3. per arm and seed, the rest of the method (stage 3, and stage 2 for ``dat``), same budget;
4. per arm and seed, ``dat evaluate`` on the test manifest (per-clip predictions kept), of the
   selected model and of the model as training left it;
5. :mod:`dat.claims` on all predictions: ``claims.md`` / ``claims.json`` (selected models, the
   pre-registered comparison), ``claims-last.md`` / ``.json`` (the same budget for every arm,
   no selection) and plots.

Each finished task leaves a marker in ``DIR/done``; an interrupted experiment re-run with
the same command resumes (training runs continue from their last checkpoint). Logs of
every task are in ``DIR/logs``; wall times in ``DIR/timings.csv``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .errors import DatError

__all__ = ["Recipe", "Task", "load_recipe", "plan_tasks", "run_experiment", "report", "detach"]

ARM_KEYS = {"method", "manifest"}       # required; optional: "config", fields over the recipe's [config]


@dataclass
class Recipe:
    path: Path
    name: str
    seeds: list[int]
    preset: str
    jobs: int
    test: str
    manifests: dict[str, dict]
    arms: dict[str, dict]
    config: dict = field(default_factory=dict)
    resamples: int = 1000
    clean_margin: float = 0.01
    early_validations: int = 3
    description: str = ""
    corpus: str = "demo"             # noisemix's built-in corpus the manifests are built from: demo | synthetic

    def manifest_reference(self, name: str) -> Path | None:
        same = self.manifests[name].get("same_as")
        return (self.path.parent / same).resolve() if same else None

    @property
    def folds(self) -> list[int | None]:
        """The test folds every arm x seed is trained for: ``0..K-1`` where the manifests are
        built with ``--folds K`` (every one alike, checked on load), else ``[None]``."""
        count = _build_folds(next(iter(self.manifests.values()))["build"])
        return list(range(count)) if count else [None]


def _build_folds(build: list) -> int | None:
    """K of a ``--folds K`` among ``noisemix build`` arguments."""
    args = [str(a) for a in build]
    for i, arg in enumerate(args):
        if arg == "--folds" and i + 1 < len(args):
            return int(args[i + 1])
        if arg.startswith("--folds="):
            return int(arg.split("=", 1)[1])
    return None


def load_recipe(path: Path) -> Recipe:
    path = Path(path)
    try:
        values = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise DatError(f"{path}: not a readable TOML recipe ({exc})") from None
    try:
        recipe = Recipe(path=path.resolve(), name=values["name"], seeds=[int(s) for s in values["seeds"]],
                        preset=values.get("preset", "cpu"), jobs=int(values.get("jobs", 1)), test=values["test"],
                        manifests=dict(values["manifests"]), arms=dict(values["arms"]),
                        config=dict(values.get("config", {})),
                        resamples=int(values.get("bootstrap_resamples", 1000)),
                        clean_margin=float(values.get("clean_margin", 0.01)),
                        early_validations=int(values.get("early_validations", 3)),
                        description=values.get("description", ""), corpus=values.get("corpus", "demo"))
    except KeyError as exc:
        raise DatError(f"{path}: recipe lacks {exc.args[0]!r}") from None
    _check_recipe(recipe)
    return recipe


def _check_recipe(recipe: Recipe) -> None:
    where = recipe.path
    if not recipe.seeds or recipe.jobs < 1:
        raise DatError(f"{where}: at least one seed and jobs >= 1 are needed")
    for name, spec in recipe.manifests.items():
        if not isinstance(spec.get("build"), list):
            raise DatError(f"{where}: manifests.{name}.build must be a list of noisemix build arguments")
    if len({_build_folds(spec["build"]) for spec in recipe.manifests.values()}) > 1:
        raise DatError(f"{where}: every manifest needs the same --folds K (or none), so train and test folds agree")
    if recipe.corpus not in ("demo", "synthetic"):
        raise DatError(f"{where}: corpus {recipe.corpus!r}: choose demo or synthetic")
    if recipe.test not in recipe.manifests:
        raise DatError(f"{where}: test = {recipe.test!r} is not one of the manifests")
    from .config import METHODS

    for arm, spec in recipe.arms.items():
        if not ARM_KEYS <= set(spec) <= ARM_KEYS | {"config"}:
            raise DatError(f"{where}: arms.{arm} needs the keys method and manifest (and optionally config)")
        if not isinstance(spec.get("config", {}), dict):
            raise DatError(f"{where}: arms.{arm}.config must be a table of config fields")
        if spec["method"] not in METHODS:
            raise DatError(f"{where}: arms.{arm}.method {spec['method']!r}: choose one of {', '.join(METHODS)}")
        if spec["manifest"] not in recipe.manifests:
            raise DatError(f"{where}: arms.{arm}.manifest {spec['manifest']!r} is not one of the manifests")


# --- the task graph --------------------------------------------------------------

@dataclass
class Task:
    name: str
    argv: list[str]
    deps: list[str]
    cost: float                      # rough relative duration, for the progress bar's ETA
    resume_argv: list[str] | None = None  # the command when an interrupted run is continued
    resume_marker: Path | None = None


class Layout:
    """Where an experiment keeps what."""

    EVAL_NAME = "eval-test"            # the selected model (best.pt): the pre-registered comparison
    EVAL_LAST_NAME = "eval-test-last"  # the model as training left it (last.pt): the same budget for every arm

    def __init__(self, out: Path):
        self.out = Path(out).resolve()

    def manifest(self, name: str) -> Path:
        return self.out / "manifests" / name

    def run(self, arm: str, seed: int, fold: int | None = None) -> Path:
        return self._seed(seed, fold) / arm

    def stage1(self, seed: int, fold: int | None = None) -> Path:
        return self._seed(seed, fold) / "stage1"

    def _seed(self, seed: int, fold: int | None) -> Path:
        return self.out / "runs" / f"seed{seed}" / ("" if fold is None else f"fold{fold}")

    def done(self, task: str) -> Path:
        return self.out / "done" / task.replace(":", "_")

    def log(self, task: str) -> Path:
        return self.out / "logs" / (task.replace(":", "_") + ".log")

    @property
    def predictions_cache(self) -> Path:
        """Clip predictions by model weights: runs that selected the shared stage-1 model are scored once."""
        return self.out / "predictions-cache"

    @property
    def config(self) -> Path:
        return self.out / "config.json"

    def arm_config(self, arm: str) -> Path:
        """The config of an arm with its own fields (the recipe's [config] under them)."""
        return self.out / "configs" / f"{arm}.json"




def _train_argv(layout: Layout, recipe: Recipe, manifest: str, out: Path, method: str, seed: int,
                config: Path) -> list[str]:
    return [sys.executable, "-m", "dat", "train", "-m", str(layout.manifest(manifest)), "--out", str(out),
            "--method", method, "--seed", str(seed), "--preset", recipe.preset, "--config", str(config),
            "--device", "cpu"]


def unit(seed: int, fold: int | None) -> str:
    """A task name's seed (and fold) part."""
    return f"seed{seed}" + ("" if fold is None else f":fold{fold}")


def _fold_args(fold: int | None) -> list[str]:
    return [] if fold is None else ["--fold", str(fold)]


def plan_tasks(recipe: Recipe, layout: Layout) -> list[Task]:
    nm = [sys.executable, "-c", "from noisemix.cli import main; main()"]
    tasks = []
    first = next(iter(recipe.manifests))
    for name, spec in recipe.manifests.items():
        argv = nm + ["build", *map(str, spec["build"]), "--out", str(layout.manifest(name)), "--no-progress"]
        # The first build assembles the demo corpus; the others wait so it is built once.
        tasks.append(Task(f"build:{name}", argv, [] if name == first else [f"build:{first}"], 1.0))
    source_manifest = recipe.arms[next(iter(recipe.arms))]["manifest"]
    units = [(seed, fold) for seed in recipe.seeds for fold in recipe.folds]
    for seed, fold in units:
        out = layout.stage1(seed, fold)
        argv = (_train_argv(layout, recipe, source_manifest, out, "source-only", seed, layout.config)
                + ["--stage", "1"] + _fold_args(fold))
        tasks.append(Task(f"stage1:{unit(seed, fold)}", argv, [f"build:{source_manifest}"], 4.0,
                          [*argv[:4], "-m", argv[5], "--out", str(out), "--resume", "--device", "cpu"],
                          out / "last.pt"))
    for seed, fold in units:
        fold_args = _fold_args(fold)
        for arm, spec in recipe.arms.items():
            out, name = layout.run(arm, seed, fold), f"{arm}:{unit(seed, fold)}"
            config = layout.arm_config(arm) if spec.get("config") else layout.config
            argv = _train_argv(layout, recipe, spec["manifest"], out, spec["method"], seed, config) + fold_args
            resume = [*argv[:4], "-m", argv[5], "--out", str(out), "--resume", "--device", "cpu"]
            tasks.append(Task(f"train:{name}", argv + ["--stage1-from", str(layout.stage1(seed, fold))],
                              [f"stage1:{unit(seed, fold)}", f"build:{spec['manifest']}"], 3.0, resume,
                              out / "last.pt"))
            for kind, eval_name, checkpoint in (("eval", layout.EVAL_NAME, "best"), ("eval-last", layout.EVAL_LAST_NAME, "last")):
                evaluate = [sys.executable, "-m", "dat", "evaluate", str(out), "-m", str(layout.manifest(recipe.test)),
                            "--name", eval_name, "--workers", "0", "--checkpoint", checkpoint,
                            "--predictions-cache", str(layout.predictions_cache)] + fold_args
                tasks.append(Task(f"{kind}:{name}", evaluate, [f"train:{name}", f"build:{recipe.test}"], 1.0))
    return tasks


# --- running ----------------------------------------------------------------------

def _environment(corpus: str) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", NOISEMIX_DEFAULT_CORPUS=corpus,
               PYTHONUNBUFFERED="1")
    env.setdefault("TQDM_DISABLE", "1")
    return env


def merged(base: dict, over: dict) -> dict:
    """``base`` with ``over``'s fields, tables merged field by field."""
    out = dict(base)
    for key, value in over.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _write_run_config(recipe: Recipe, layout: Layout) -> None:
    values = dict(merged({"train": {"progress": False}}, recipe.config), preset=recipe.preset)
    _write_config(values, layout.config, recipe.preset, "[config]")
    for arm, spec in recipe.arms.items():
        if spec.get("config"):
            _write_config(merged(values, spec["config"]), layout.arm_config(arm), recipe.preset, f"arms.{arm}.config")


def _write_config(values: dict, path: Path, preset_name: str, what: str) -> None:
    from .config import config_from_dict, preset
    from .io import write_json

    config_from_dict(dict(values), preset(preset_name))  # fails here, in one line, on a bad field
    if path.is_file() and json.loads(path.read_text()) != values:
        raise DatError(f"{path}: this experiment ran with another {what}; use another --out")
    write_json(values, path)


class Runner:
    """Runs the task graph, ``jobs`` processes at a time, in the recipe's order."""

    def __init__(self, tasks: list[Task], layout: Layout, jobs: int, progress: bool, corpus: str):
        from tqdm import tqdm

        self.tasks, self.layout, self.jobs, self.env = tasks, layout, jobs, _environment(corpus)
        self.done = {t.name for t in tasks if layout.done(t.name).is_file()}
        self.failed: set[str] = set()
        self.running: dict[str, tuple[subprocess.Popen, float, object]] = {}
        total = sum(t.cost for t in tasks)
        self.bar = tqdm(total=total, initial=sum(t.cost for t in tasks if t.name in self.done), unit="task-units",
                        disable=not progress, dynamic_ncols=True, desc="experiment")

    def _ready(self) -> list[Task]:
        blocked = self.done | self.failed | set(self.running)
        return [t for t in self.tasks if t.name not in blocked and all(d in self.done for d in t.deps)]

    def _start(self, task: Task) -> None:
        argv = task.argv
        if task.resume_marker is not None and task.resume_marker.is_file():
            argv = task.resume_argv
        log_path = self.layout.log(task.name)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(log_path, "a")
        log.write(f"$ {' '.join(argv)}\n")
        log.flush()
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=self.env)
        self.running[task.name] = (proc, time.time(), log)
        self.bar.write(f"[{time.strftime('%H:%M:%S')}] start  {task.name}")

    def _finish(self, name: str, code: int) -> None:
        proc, started, log = self.running.pop(name)
        log.close()
        seconds = time.time() - started
        task = next(t for t in self.tasks if t.name == name)
        if code == 0:
            self.layout.done(name).parent.mkdir(parents=True, exist_ok=True)
            self.layout.done(name).write_text(f"{seconds:.1f}\n")
            self.done.add(name)
            self.bar.update(task.cost)
            self._timing(name, seconds)
            self.bar.write(f"[{time.strftime('%H:%M:%S')}] done   {name} ({seconds:.0f} s)")
        else:
            self.failed.add(name)
            tail = self.layout.log(name).read_text(errors="replace").strip().splitlines()[-1:] or ["(no output)"]
            self.bar.write(f"[{time.strftime('%H:%M:%S')}] FAILED {name} (exit {code}): {tail[0]}; "
                           f"log: {self.layout.log(name)}")

    def _timing(self, name: str, seconds: float) -> None:
        path = self.layout.out / "timings.csv"
        new = not path.is_file()
        with open(path, "a") as handle:
            if new:
                handle.write("task,seconds\n")
            handle.write(f"{name},{seconds:.1f}\n")

    def run(self) -> bool:
        try:
            while True:
                for task in self._ready()[: self.jobs - len(self.running)]:
                    self._start(task)
                if not self.running:
                    break
                time.sleep(0.5)
                for name, (proc, _, _) in list(self.running.items()):
                    if proc.poll() is not None:
                        self._finish(name, proc.returncode)
        finally:
            for proc, _, _ in self.running.values():
                proc.terminate()
            self.bar.close()
        return not self.failed and len(self.done) == len(self.tasks)


def _check_committed(recipe: Recipe, layout: Layout) -> list[str]:
    """One line per manifest the recipe says must equal a committed one."""
    from noisemix import load_manifest
    from noisemix import schema as S

    lines = []
    for name in recipe.manifests:
        reference = recipe.manifest_reference(name)
        built = layout.manifest(name) / S.INFO_FILE
        if reference is None or not built.is_file():
            continue
        ours, theirs = load_manifest(built.parent).fingerprints, load_manifest(reference).fingerprints
        same = "identical to" if ours == theirs else "DIFFERS from"
        lines.append(f"manifest {name}: {same} {os.path.relpath(reference)}")
    return lines


def run_experiment(recipe: Recipe, out: Path, progress: bool = True) -> bool:
    layout = Layout(out)
    layout.out.mkdir(parents=True, exist_ok=True)
    _write_run_config(recipe, layout)
    tasks = plan_tasks(recipe, layout)
    started = time.time()
    ok = Runner(tasks, layout, recipe.jobs, progress, recipe.corpus).run()
    _add_wall_time(layout, time.time() - started)
    for line in _check_committed(recipe, layout):
        print(line, file=sys.stderr)
    report(recipe, out)
    return ok


def _add_wall_time(layout: Layout, seconds: float) -> None:
    path = layout.out / "wall_time.json"
    info = json.loads(path.read_text()) if path.is_file() else {"sessions": []}
    info["sessions"].append({"seconds": round(seconds, 1), "ended": time.strftime("%Y-%m-%d %H:%M:%S")})
    from .io import write_json

    write_json(info, path)


def report(recipe: Recipe, out: Path) -> Path | None:
    """Claims and plots from every arm x seed evaluated so far (partial results welcome)."""
    from .experiment_report import write_report

    return write_report(recipe, Layout(out))


def detach(argv: list[str], out: Path) -> int:
    """Start the experiment in the background (its own session); returns its pid."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    log = open(out / "experiment.log", "a")
    proc = subprocess.Popen([sys.executable, "-m", "dat", *argv], stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True, env=dict(os.environ, TQDM_MININTERVAL="30"))
    return proc.pid
