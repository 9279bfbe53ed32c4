"""``dat`` command line: train, evaluate, compare, experiment, tag.

Heavy imports (torch, sklearn, matplotlib) happen inside the commands so ``dat --help``
is instant. Mistakes in the user's input print one line on stderr and exit with code 2.
Multi-process training: ``torchrun --nproc-per-node N -m dat.cli train ...``.
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import List, Optional

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Domain adversarial music tagging on noisemix manifests.")

__all__ = ["app", "main"]


def _show_version(value: bool) -> None:
    if value:
        from . import __version__

        typer.echo(f"dat {__version__}")
        raise typer.Exit()


@app.callback()
def _options(version: bool = typer.Option(False, "--version", callback=_show_version, is_eager=True,
                                          help="Print the version and exit.")) -> None:
    """Domain adversarial music tagging on noisemix manifests."""


@contextlib.contextmanager
def _user_errors():
    """Turn errors caused by the input into one line on stderr and exit code 2."""
    from noisemix import ManifestError, NoisemixError

    from .errors import DatError

    try:
        yield
    except (DatError, NoisemixError, ManifestError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        typer.echo("interrupted (a training run continues with --resume)", err=True)
        raise typer.Exit(130) from None


def _parse_sets(pairs: list[str]) -> dict:
    """``["train.stage1.steps=50", ...]`` to a nested dict (values parsed as JSON when they can be)."""
    from .errors import DatError

    out: dict = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise DatError(f"--set {pair!r}: expected KEY=VALUE, e.g. train.stage1.steps=200")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def _load_manifest(manifest: Path, roots: list[str], fold: int = -1):
    """The manifest, with fold ``fold`` as its test split where it is >= 0 (``--folds`` builds)."""
    from noisemix import load_manifest, parse_roots, select_fold

    loaded = load_manifest(manifest, parse_roots(roots))
    return select_fold(loaded, fold) if fold >= 0 else loaded


def _resolve_config(run: Path, resume: bool, preset: Optional[str], config_file: Optional[Path], method: Optional[str],
                    seed: Optional[int], sets: list[str]):
    from .config import config_from_dict, merge_values
    from .errors import DatError

    if resume:
        if preset or config_file or method or seed is not None or sets:
            raise DatError("--resume continues the run with its saved config.json; drop --preset/--config/--method/"
                           "--seed/--set")
        path = run / "config.json"
        if not path.is_file():
            raise DatError(f"{run}: nothing to resume (no config.json)")
        return config_from_dict(json.loads(path.read_text()))
    values = _read_config_file(config_file) if config_file else {}
    if preset:
        values["preset"] = preset
    if method:
        values["method"] = method
    if seed is not None:
        values["seed"] = seed
    return config_from_dict(merge_values(values, _parse_sets(sets)))


def _read_config_file(path: Path) -> dict:
    """Config fields from a JSON or TOML file (by its suffix)."""
    import tomllib

    from .errors import DatError

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        values = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        kind = "TOML" if path.suffix == ".toml" else "JSON"
        raise DatError(f"{path}: not a readable {kind} config ({exc})") from None
    if not isinstance(values, dict):
        raise DatError(f"{path}: a config file holds an object of fields")
    return values


def _check_device(device: str) -> None:
    """``--device cuda`` where torch has no CUDA is one line, not a traceback from deep inside torch."""
    from .errors import DatError

    if device not in ("auto", "cpu", "cuda"):
        raise DatError(f"--device {device!r}: choose auto, cpu or cuda")
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            build = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
            raise DatError(f"--device cuda: no CUDA device is available (torch {torch.__version__}, {build}); "
                           "use --device cpu or auto")


@app.command()
def train(
    manifest: Path = typer.Option(..., "--manifest", "-m", help="noisemix manifest directory"),
    out: Path = typer.Option(..., "--out", "-o", help="run directory (checkpoints, logs, config)"),
    method: Optional[str] = typer.Option(None, help="source-only | multicondition | dat-no-dc-pretrain | dat | consistency (default dat)"),
    preset: Optional[str] = typer.Option(None, help="full (CLMR SampleCNN, the paper's; GPU) | cpu (default: log-mel CNN) | "
                                                       "cpu-samplecnn (small SampleCNN) | tiny (tests)"),
    config: Optional[Path] = typer.Option(None, "--config", help="JSON or TOML file of config fields over the preset"),
    set_: List[str] = typer.Option([], "--set", help="override one field, e.g. --set train.stage1.steps=200"),
    seed: Optional[int] = typer.Option(None, help="run seed (default 0)"),
    stage: List[int] = typer.Option([], "--stage", help="run only these stages of the method (repeatable)"),
    fold: Optional[int] = typer.Option(None, "--fold", help="a manifest built with --folds K: test fold J, validate on the next, train on the rest (kept in the run's config as data.fold)"),
    pretrained: Optional[Path] = typer.Option(None, help="CLMR SampleCNN checkpoint for the FE (skips stage 1)"),
    resume: bool = typer.Option(False, help="continue the run in --out from its last checkpoint"),
    stage1_from: Optional[Path] = typer.Option(None, "--stage1-from",
                                               help="start from this run's finished stage 1 (same seed and stage-1 "
                                                    "config; see dat experiment)"),
    print_config: bool = typer.Option(False, "--print-config", help="print the fully resolved config and exit"),
    root: List[str] = typer.Option([], "--root", help="NAME=PATH of a manifest root on this machine"),
    device: str = typer.Option("auto", help="auto | cpu | cuda"),
):
    """Train one method (all its stages, or those given with --stage).

    Stages: 1 trains FE + LP on labelled clean music; 2 (dat only) trains the DC on the
    frozen FE; 3 gives every method the same updates from stage 1's best model
    (source-only: clean music; multicondition: clean + labelled noisy rows;
    dat / dat-no-dc-pretrain: L_LP(src) + dc_weight * mean(L_DC(src), L_DC(trg)) with
    the GRL coefficient ramped over train.lambda_horizon_steps).

    Model selection (one rule, fixed before training): best.pt is the checkpoint with
    the highest macro PR-AUC on the *clean* validation clips over stages 1 and 3, stage
    1's best carried into stage 3 (stage 3 keeps it unless it beats it). Noisy
    validation rows carry target labels, so they never select; RUN/selection.json says
    what was chosen and what noisy validation would have chosen.

    Method options (--set): train.stage3.fe_lr_scale (FE learning rate x this, default
    0.1), train.lambda_max, train.lambda_horizon_steps, train.dc_weight,
    train.stageN.weight_decay (AdamW), train.stageN.grad_clip_norm (0: off).

    Run folder: best.pt, last.pt (resume), selection.json, log.csv (losses, lambda, DC
    accuracy on each domain), valid.csv, valid_probs/, training.png, config.json, run.json.
    """
    with _user_errors():
        from .config import check_stages
        from .errors import DatError
        from .train import train as run_training

        cfg = _resolve_config(out, resume, preset, config, method, seed,
                              set_ + ([f"data.fold={fold}"] if fold is not None else []))
        if print_config:
            typer.echo(cfg.to_json())
            return
        _check_device(device)
        check_stages(cfg.method, stage, resume or stage1_from is not None or pretrained is not None, out)
        if pretrained is not None and not pretrained.is_file():
            raise DatError(f"{pretrained}: pretrained checkpoint not found")
        result = run_training(cfg, _load_manifest(manifest, root, cfg.data.fold), out, stages=stage or None, pretrained=pretrained,
                              resume=resume, stage1_from=stage1_from, device=device)
        chosen = result["selection"]["chosen"] or {}
        typer.echo(f"{cfg.method}: stages {result['completed']} done, {result['global_step']} steps; "
                   f"best clean-validation PR-AUC {result['best_valid_pr_auc']:.4f} (stage {chosen.get('stage')} "
                   f"step {chosen.get('step')}); model in {out / 'best.pt'}, curves in {out / 'training.png'}")


@app.command()
def evaluate(
    runs: List[Path] = typer.Argument(..., help="run directories (each with best.pt)"),
    manifest: Path = typer.Option(..., "--manifest", "-m"),
    name: str = typer.Option("eval", help="write each run's reports to RUN/NAME (one name per test manifest)"),
    out: Optional[Path] = typer.Option(None, help="folder for the combined table and plot (several runs)"),
    split: str = typer.Option("test", help="split to score (test; valid for checks)"),
    fold: int = typer.Option(-1, "--fold", help="a manifest built with --folds K: score test fold J (as the run was trained with --fold J)"),
    which: str = typer.Option("best", "--checkpoint", help="best: the model the selection rule chose (best.pt); last: the model as training left it (last.pt), for results at a fixed budget"),
    root: List[str] = typer.Option([], "--root"),
    batch_size: int = typer.Option(32),
    workers: int = typer.Option(2, help="loader workers"),
    cache_dir: Optional[Path] = typer.Option(None, help="decoded-audio cache (default: noisemix's, $NOISEMIX_CACHE/decoded, shared by all runs)"),
    predictions_cache: Optional[Path] = typer.Option(None, help="folder of clip predictions keyed by model weights and rows: a model already scored on these rows (e.g. the same stage-1 model selected by several runs) is not scored again"),
):
    """Score runs on clean clips, per SNR (5 dB bins on random-SNR manifests), per noise
    category and per tag. Reports: RUN/NAME/{metrics.json, per_tag.csv, table.md, auc_vs_snr.png}."""
    with _user_errors():
        from .errors import DatError
        from .evaluate import comparison_table, evaluate_run, plot_auc_vs_snr, score_cell, write_run_reports

        if len(runs) > 1 and out is None:
            raise DatError("several runs: pass --out DIR for the combined table and plot")
        if not name or Path(name).name != name or name.startswith("."):
            raise DatError(f"--name {name!r}: a plain folder name, e.g. eval-grid")
        loaded = _load_manifest(manifest, root, fold)
        all_metrics = []
        for run in runs:
            metrics, per_tag, predictions = evaluate_run(run, loaded, split, batch_size, workers, cache_dir=cache_dir,
                                                        which=which, predictions_cache=predictions_cache)
            write_run_reports(metrics, per_tag, run / name, predictions)
            all_metrics.append(metrics)
            typer.echo(f"{run}: clean ROC-AUC / PR-AUC {score_cell(metrics.get('clean'))}, "
                       f"noisy {score_cell(metrics.get('noisy'))} -> {run / name}")
        if out is not None:
            from .io import write_text

            table = comparison_table(all_metrics)
            write_text(table, out / "table.md")
            plot_auc_vs_snr(all_metrics, out / "auc_vs_snr.png")
            typer.echo(table)


@app.command()
def compare(
    runs: List[Path] = typer.Argument(..., help="evaluated run directories"),
    evals: List[str] = typer.Option(["eval"], "--eval",
                                    help="evaluation folder name(s) in each run (dat evaluate --name); repeatable"),
    out: Optional[Path] = typer.Option(None, help="also write the tables (markdown) here, plots beside it"),
):
    """Put evaluated runs side by side. Runs of one method with different seeds are
    averaged into one column; the per-run table follows."""
    with _user_errors():
        from .evaluate import conditions_table, mean_over_seeds, plot_auc_vs_snr, read_metrics

        per_eval = [[read_metrics(run, name) for run in runs] for name in evals]
        prefixes = evals if len(evals) > 1 else [""]
        means = [mean_over_seeds(metrics) for metrics in per_eval]
        text = conditions_table([list(column) for column in zip(*means)], prefixes)
        if len(means[0]) < len(runs):
            per_run = conditions_table([list(column) for column in zip(*per_eval)], prefixes)
            text = f"{text}\n## Each run\n\n{per_run}"
        typer.echo(text)
        if out is not None:
            from .io import write_text

            write_text(text, out)
            for name, metrics in zip(evals, means):
                suffix = "" if len(evals) == 1 else f"-{name}"
                plot_auc_vs_snr(metrics, out.with_name(f"{out.stem}{suffix}.png"))


@app.command()
def experiment(
    recipe: Path = typer.Argument(..., help="experiment recipe (TOML), e.g. experiments/demo-claims.toml"),
    out: Path = typer.Option(..., "--out", "-o", help="experiment directory (re-run the same command to resume)"),
    detach: bool = typer.Option(False, "--detach", help="run in the background; follow DIR/experiment.log"),
    report_only: bool = typer.Option(False, "--report", help="only write claims.md and plots from what has finished"),
    dry_run: bool = typer.Option(False, "--dry-run", help="print the tasks (and their commands) and exit"),
    progress: bool = typer.Option(True, help="show a progress bar with ETA"),
):
    """Test the paper's claims: build the manifests, train every arm x seed, evaluate, write claims.md.

    Resumable (finished tasks are kept, training runs continue from their checkpoints),
    parallel (the recipe's `jobs` processes, one thread each), with partial results on --report.
    """
    with _user_errors():
        from . import experiment as exp

        spec = exp.load_recipe(recipe)
        if dry_run:
            for task in exp.plan_tasks(spec, exp.Layout(out)):
                typer.echo(f"{task.name}  (after: {', '.join(task.deps) or '-'})\n    {' '.join(task.argv)}")
            return
        if detach:
            pid = exp.detach(["experiment", str(recipe), "--out", str(out), "--no-progress"], out)
            typer.echo(f"experiment running in the background (pid {pid}); follow: tail -f {out / 'experiment.log'}; "
                       f"partial results: dat experiment {recipe} --out {out} --report")
            return
        if report_only:
            exp.report(spec, out)
            return
        if not exp.run_experiment(spec, out, progress):
            raise typer.Exit(1)


@app.command()
def tag(
    run: Path = typer.Argument(..., help="run directory (with best.pt)"),
    audio: Path = typer.Argument(..., help="any audio file libsndfile reads (any rate, mono or stereo)"),
    top: int = typer.Option(10, help="number of tags to print"),
):
    """Print the top tags of an audio file with their scores."""
    with _user_errors():
        from noisemix import load_mono

        from . import checkpoint
        from .models import Tagger
        from .predict import predict_audio

        nets, state = checkpoint.load_model(run / "best.pt")
        model = checkpoint.model_config_of(state)
        samples = load_mono(audio, model.sample_rate)
        if samples.size < model.input_length:
            typer.echo(f"note: {audio} is {samples.size} samples at {model.sample_rate} Hz, shorter than one model "
                       f"input ({model.input_length}); zero-padded", err=True)
        scores = predict_audio(Tagger(nets.fe, nets.lp), samples, model.input_length)
        for index in scores.argsort()[::-1][:top]:
            typer.echo(f"{state['tags'][index]}\t{scores[index]:.4f}")


def main() -> None:
    try:
        import torch  # noqa: F401  (every dat command trains, scores or reads checkpoints)
    except ImportError:
        sys.stderr.write("dat: error: PyTorch is not installed; the trainer needs the train extra: "
                         "pip install 'noisemix-dat[train]' (CPU only: pip install torch first, from its CPU index)\n")
        raise SystemExit(2) from None
    app()


if __name__ == "__main__":
    main()
