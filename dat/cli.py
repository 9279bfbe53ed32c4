"""``dat`` command line: train, evaluate, compare, tag.

Heavy imports (torch, sklearn, matplotlib) happen inside the commands so ``dat --help``
is instant. Mistakes in the user's input print one line on stderr and exit with code 2.
Multi-process training: ``torchrun --nproc-per-node N -m dat.cli train ...``.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import List, Optional

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Domain adversarial music tagging on noisemix manifests.")

__all__ = ["app", "main"]


@contextlib.contextmanager
def _user_errors():
    """Turn errors caused by the input into one line on stderr and exit code 2."""
    from noisemix.errors import NoisemixError
    from noisemix.schema import ManifestError

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


def _load_manifest(manifest: Path, roots: list[str]):
    from noisemix import load_manifest
    from noisemix.manifest import parse_roots

    return load_manifest(manifest, parse_roots(roots))


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
    values: dict = {}
    if config_file:
        try:
            values = json.loads(Path(config_file).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise DatError(f"{config_file}: not a readable JSON config ({exc})") from None
    if preset:
        values["preset"] = preset
    if method:
        values["method"] = method
    if seed is not None:
        values["seed"] = seed
    return config_from_dict(merge_values(values, _parse_sets(sets)))


@app.command()
def train(
    manifest: Path = typer.Option(..., "--manifest", "-m", help="noisemix manifest directory"),
    out: Path = typer.Option(..., "--out", "-o", help="run directory (checkpoints, logs, config)"),
    method: Optional[str] = typer.Option(None, help="source-only | multicondition | dat-no-dc-pretrain | dat (default dat)"),
    preset: Optional[str] = typer.Option(None, help="full (CLMR SampleCNN, GPU) | cpu (default) | tiny"),
    config: Optional[Path] = typer.Option(None, "--config", help="JSON file of config fields over the preset"),
    set_: List[str] = typer.Option([], "--set", help="override one field, e.g. --set train.stage1.steps=200"),
    seed: Optional[int] = typer.Option(None, help="run seed (default 0)"),
    stage: List[int] = typer.Option([], "--stage", help="run only these stages of the method (repeatable)"),
    pretrained: Optional[Path] = typer.Option(None, help="CLMR SampleCNN checkpoint for the FE (skips stage 1)"),
    resume: bool = typer.Option(False, help="continue the run in --out from its last checkpoint"),
    root: List[str] = typer.Option([], "--root", help="NAME=PATH of a manifest root on this machine"),
    device: str = typer.Option("auto", help="auto | cpu | cuda"),
):
    """Train one method (all its stages, or those given with --stage)."""
    with _user_errors():
        from .errors import DatError
        from .train import train as run_training

        if device not in ("auto", "cpu", "cuda"):
            raise DatError(f"--device {device!r}: choose auto, cpu or cuda")
        cfg = _resolve_config(out, resume, preset, config, method, seed, set_)
        result = run_training(cfg, _load_manifest(manifest, root), out, stages=stage or None, pretrained=pretrained,
                              resume=resume, device=device)
        typer.echo(f"{cfg.method}: stages {result['completed']} done, {result['global_step']} steps; "
                   f"best validation PR-AUC {result['best_valid_pr_auc']:.4f}; model in {out / 'best.pt'}")


@app.command()
def evaluate(
    runs: List[Path] = typer.Argument(..., help="run directories (each with best.pt)"),
    manifest: Path = typer.Option(..., "--manifest", "-m"),
    name: str = typer.Option("eval", help="write each run's reports to RUN/NAME (one name per test manifest)"),
    out: Optional[Path] = typer.Option(None, help="folder for the combined table and plot (several runs)"),
    split: str = typer.Option("test", help="split to score (test; valid for checks)"),
    root: List[str] = typer.Option([], "--root"),
    batch_size: int = typer.Option(32),
    workers: int = typer.Option(2, help="loader workers"),
    cache_dir: Optional[Path] = typer.Option(None, help="decoded-audio cache (default: noisemix's, $NOISEMIX_CACHE/decoded, shared by all runs)"),
):
    """Score runs on clean clips, per SNR (5 dB bins on random-SNR manifests), per noise
    category and per tag. Reports: RUN/NAME/{metrics.json, per_tag.csv, table.md, auc_vs_snr.png}."""
    with _user_errors():
        from .errors import DatError
        from .evaluate import comparison_table, evaluate_run, plot_auc_vs_snr, write_run_reports

        if len(runs) > 1 and out is None:
            raise DatError("several runs: pass --out DIR for the combined table and plot")
        if not name or Path(name).name != name or name.startswith("."):
            raise DatError(f"--name {name!r}: a plain folder name, e.g. eval-grid")
        loaded = _load_manifest(manifest, root)
        all_metrics = []
        for run in runs:
            metrics, per_tag = evaluate_run(run, loaded, split, batch_size, workers, cache_dir=cache_dir)
            write_run_reports(metrics, per_tag, run / name)
            all_metrics.append(metrics)
            typer.echo(f"{run}: clean ROC-AUC {metrics.get('clean', {}).get('roc_auc', float('nan')):.4f}, "
                       f"noisy ROC-AUC {metrics.get('noisy', {}).get('roc_auc', float('nan')):.4f} -> {run / name}")
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
    app()


if __name__ == "__main__":
    main()
