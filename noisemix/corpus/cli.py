"""``noisemix corpus ...``: build corpora from installed packages (mounted by noisemix.cli)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer

corpus_app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                         help="Assemble corpora from installed packages.")


@corpus_app.callback()
def _group() -> None:
    """Assemble corpora from installed packages."""  # a callback keeps 'demo' a sub-command


@corpus_app.command("demo")
def demo(
    out: Path = typer.Option(..., "--out", help="Directory to create (must not exist, or be empty)."),
    seed: int = typer.Option(0, "--seed", help="Seed of every per-piece choice (instruments, tempo, excerpts)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
    piece_limit: Optional[int] = typer.Option(None, "--piece-limit", min=1,
                                              help="At most this many pieces per repertory: a small corpus of the "
                                                   "same kind for quick checks (3: 30 clips in about 20 s)."),
    replace_outdated: bool = typer.Option(False, "--replace-outdated",
                                          help="Replace a demo corpus in --out that was built from other inputs "
                                               "(older noisemix or package versions), once the new one is complete."),
) -> None:
    """Build the tagged demo corpus (clean music + speech/environmental/music noise)."""
    from .demo import DemoCorpusError, build_demo_corpus

    started = time.monotonic()
    try:
        info = build_demo_corpus(out, seed=seed, progress=progress, piece_limit=piece_limit,
                                 replace_outdated=replace_outdated)
    except DemoCorpusError as exc:
        typer.echo(f"noisemix corpus demo: {exc}", err=True)
        raise typer.Exit(2) from None
    noise = info["noise"]["categories"]
    typer.echo(
        f"{out}: {info['clean']['clips']} clean clips ({info['clean']['hours']:.2f} h, "
        f"{len(info['clean']['tags'])} tags); noise "
        + ", ".join(f"{c} {v['recordings']} files/{v['groups']} groups" for c, v in noise.items())
        + f"; {info['skipped_count']} skipped; {time.monotonic() - started:.0f} s"
    )
