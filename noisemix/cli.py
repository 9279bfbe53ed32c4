"""The ``noisemix`` command line: thin commands over the library (heavy imports inside)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from .spec import BuildSpec

# The build's defaults live in one place, the spec; the options below show them.
BUILD_DEFAULTS = BuildSpec()

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  help="Reproducible noisy-music manifests: build, render, verify, inspect, export.")


def _show_version(value: bool) -> None:
    if value:
        from . import __version__

        typer.echo(f"noisemix {__version__}")
        raise typer.Exit()


@app.callback()
def _options(version: bool = typer.Option(False, "--version", callback=_show_version, is_eager=True,
                                          help="Print the version and exit.")) -> None:
    """Reproducible noisy-music manifests: build, render, verify, inspect, export."""


def _roots(pairs):
    from .roots import parse_roots

    return parse_roots(pairs)


ROOT_HELP = "NAME=PATH: where a root named in the manifest lives on this machine (repeatable)."


@app.command()
def scan(
    clean: List[str] = typer.Option([], "--clean", help="[NAME=]PATH of clean music (repeatable)."),
    noise: List[str] = typer.Option([], "--noise", help="CATEGORY=PATH, CATEGORY:NAME=PATH or PATH with category sub-folders."),
    out: Path = typer.Option(..., "--out", help="Where to write the sources table (parquet)."),
    corpus_option: List[str] = typer.Option([], "--corpus-option", help="ROOT.KEY=VALUE: an adapter option (repeatable)."),
    workers: int = typer.Option(1, "--workers", min=1, help="Processes for hashing and decoding."),
    on_error: str = typer.Option("fail", "--on-error", help="fail: stop at the first bad file; skip: list it and go on."),
):
    """Scan corpora into a sources table (cached: unchanged files are not read again)."""
    from .cli_inputs import corpus_inputs
    from .manifest import frame_to_table
    from .io import write_parquet
    from .sources import scan as scan_inputs
    from . import schema as S

    result = scan_inputs(corpus_inputs(clean, noise, corpus_option), on_error=_on_error(on_error), workers=workers)
    write_parquet(frame_to_table(result.sources, S.SOURCES_SCHEMA), out)
    for line in result.notes + [f"skipped {p}" for p in result.problems]:
        typer.echo(line)
    typer.echo(f"{len(result.sources)} sources -> {out}")


# With --recipe, only these options may be given: the recipe fixes everything that decides the mixtures.
RECIPE_COMPATIBLE = {"ctx", "out", "recipe", "root", "corpus_option", "workers", "on_error", "progress"}


@app.command()
def build(
    ctx: typer.Context,
    out: Path = typer.Option(..., "--out", help="Manifest directory to write."),
    recipe: Optional[Path] = typer.Option(None, "--recipe", help="TOML recipe that defines a shared benchmark (e.g. manifests/recipes/mtat-musan.toml); give its corpora with --root."),
    root: List[str] = typer.Option([], "--root", help="NAME=PATH: the folder of a recipe corpus (repeatable)."),
    corpus_option: List[str] = typer.Option([], "--corpus-option", help="ROOT.KEY=VALUE: an adapter option, e.g. mtat.untagged=drop (repeatable)."),
    clean: List[str] = typer.Option([], "--clean", help="[NAME=]PATH of clean music; tags from tags.csv or sub-folder names (repeatable)."),
    noise: List[str] = typer.Option([], "--noise", help="CATEGORY=PATH (environmental, speech, music), CATEGORY:NAME=PATH, or PATH with category sub-folders (repeatable)."),
    snr: List[str] = typer.Option([BUILD_DEFAULTS.snr.text()], "--snr", help="-5:20 uniform; -5:20:5 grid; 0,5,10 list; CATEGORY=SPEC overrides one category (repeatable)."),
    seed: int = typer.Option(BUILD_DEFAULTS.seed, "--seed", help="Every random choice derives from this seed and the mixture's key."),
    design: str = typer.Option(BUILD_DEFAULTS.design, "--design", help="random: draws per segment; grid: every segment x category x SNR level (balanced test sets)."),
    segment: str = typer.Option(str(BUILD_DEFAULTS.segment_frames), "--segment", help="Segment length in samples at --sample-rate, or 'full' for whole clips."),
    sample_rate: int = typer.Option(BUILD_DEFAULTS.sample_rate, "--sample-rate", help="Output sample rate (Hz)."),
    mixtures_per_segment: int = typer.Option(BUILD_DEFAULTS.mixtures_per_segment, "--mixtures-per-segment", min=1, help="Noisy mixtures per clean segment (random design)."),
    max_segments_per_clip: Optional[int] = typer.Option(None, "--max-segments-per-clip", min=1, help="Use at most this many segments of each clip (default: all)."),
    category_weight: List[str] = typer.Option([], "--category-weight", help="CATEGORY=WEIGHT for the random design (default: equal)."),
    snr_definition: str = typer.Option(BUILD_DEFAULTS.snr_definition, "--snr-definition", help="rms: energy ratio of the mixed segments; lufs: BS.1770 loudness difference."),
    clip_policy: str = typer.Option(BUILD_DEFAULTS.clip_policy, "--clip-policy", help="scale: lower both gains so the mixture never clips (SNR unchanged); none."),
    level: str = typer.Option(BUILD_DEFAULTS.level, "--level", help="match-clean: every mixture keeps its clean segment's level, with the clean peak --headroom-db below full scale for the clip's clean and noisy rows alike, so loudness gives away neither the domain nor the SNR; as-mixed: noise added on top of the clean at gain 1, each mixture scaled down alone if it would clip."),
    noise_fill: str = typer.Option(BUILD_DEFAULTS.noise_fill, "--noise-fill", help="Noise shorter than its clean segment. loop: repeated with a 10 ms crossfade; concat: followed by other recordings of its category and split, each once, crossfaded (no recording repeats while the pool has unused ones)."),
    max_loops: Optional[int] = typer.Option(None, "--max-loops", help="A noise recording may start over at most this often within one mixture (0: never loop); mixtures that would loop more draw another recording, and the build stops naming them when redraws run out."),
    folds: Optional[int] = typer.Option(None, "--folds", help="Grouped k-fold benchmark: every clean group and every noise group goes to one of K folds, each clip is mixed only with noise of its fold, and the fold is in the row. The split columns are fold 0's (test 0, valid 1, train the rest); dat --fold J tests fold J. Overrides --split-fractions."),
    headroom_db: float = typer.Option(BUILD_DEFAULTS.headroom_db, "--headroom-db", help="match-clean: how far below full scale a clip's peak sits (dB), room for the noise; mixtures that would still clip are scaled down alone and counted in the report."),
    clean_references: bool = typer.Option(BUILD_DEFAULTS.clean_references, "--clean-references/--no-clean-references", help="Also write one noise-free row per clean segment."),
    split_fractions: str = typer.Option(",".join(f"{f:g}" for f in BUILD_DEFAULTS.split_fractions), "--split-fractions", help="train,valid,test shares for sources without a split."),
    noise_transform: List[str] = typer.Option([], "--noise-transform", help="audiomentations transform on the noise, e.g. LowPassFilter:p=0.5 (repeatable). Only transforms that keep the length and read no files (filters, gains, distortions, masks; listed in noisemix.transforms.ALLOWED_TRANSFORMS), as a manifest must never make its user read local files."),
    mixture_transform: List[str] = typer.Option([], "--mixture-transform", help="audiomentations transform on the mixture (repeatable)."),
    workers: int = typer.Option(1, "--workers", min=1, help="Processes for scanning; the result does not depend on it."),
    on_error: str = typer.Option("fail", "--on-error", help="fail: stop at the first bad file; skip: leave it out and list it in the report."),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
):
    """Build a manifest of clean + noise mixtures at controlled SNRs.

    Without --clean/--noise, the built-in default corpus is used (the demo corpus when
    its packages are installed, else a small synthetic corpus, labelled as such).
    A known adapter name reads a public corpus in its published layout: --clean mtat=PATH,
    --noise musan=PATH, --noise esc50=PATH, --clean/--noise csv=PATH.
    """
    from .build import build_manifest
    from .cli_inputs import build_spec, corpus_inputs, default_inputs

    if recipe is not None:
        _build_recipe(ctx, recipe, out, root, corpus_option, workers, _on_error(on_error), progress)
        return
    if root:
        raise _spec_error("--root is for recipe corpora; give corpora with --clean/--noise, or use --recipe")

    spec = build_spec(seed=seed, design=design, segment=segment, sample_rate=sample_rate, snr=snr,
                      mixtures_per_segment=mixtures_per_segment, max_segments_per_clip=max_segments_per_clip,
                      category_weight=category_weight, snr_definition=snr_definition, clip_policy=clip_policy, level=level, headroom_db=headroom_db, noise_fill=noise_fill, max_loops=max_loops, folds=folds,
                      clean_references=clean_references, split_fractions=split_fractions,
                      noise_transform=noise_transform, mixture_transform=mixture_transform)
    if clean or noise:
        inputs, tags = corpus_inputs(clean, noise, corpus_option), None
    else:
        inputs, tags, label = default_inputs(progress)
        typer.echo(f"no corpora given: using the built-in default corpus ({label})")
    info = build_manifest(inputs, spec, out, on_error=_on_error(on_error), workers=workers, progress=progress, tags=tags)
    _print_report(info, out)


def _spec_error(text: str):
    from .errors import SpecError

    return SpecError(text)


def _build_recipe(ctx, recipe_path, out, root, corpus_option, workers, on_error, progress) -> None:
    """Build the benchmark a recipe defines, then write its dataset card."""
    from .build import build_manifest
    from .card import write_card
    from .cli_inputs import parse_corpus_options
    from .recipe import load_recipe

    given = sorted(name for name in ctx.params if name not in RECIPE_COMPATIBLE
                   and getattr(ctx.get_parameter_source(name), "name", "") == "COMMANDLINE")
    if given:
        flags = ", ".join("--" + name.replace("_", "-") for name in given)
        raise _spec_error(f"{flags} cannot be combined with --recipe: the recipe fixes them; edit a copy of the recipe instead")
    loaded = load_recipe(recipe_path)
    options = parse_corpus_options(corpus_option)
    inputs = loaded.inputs(_roots(root), options)
    info = build_manifest(inputs, loaded.spec, out, on_error=on_error, workers=workers, progress=progress,
                          recipe=loaded.record(options))
    _print_report(info, out)
    typer.echo(f"dataset card: {write_card(out)}")


def _print_report(info: dict, out: Path) -> None:
    from . import schema as S

    report = info[S.INFO_REPORT]
    for line in report["notes"]:
        typer.echo(f"note: {line}")
    for line in report["skipped_files"]:
        typer.echo(f"skipped: {line}")
    for name, count in report["counts"].items():
        if count:
            typer.echo(f"{name}: {count}")
    _print_summary(out, info)
    typer.echo(f"manifest written to {out} (mixtures fingerprint {info[S.INFO_FINGERPRINTS][S.FINGERPRINT_MIXTURES][:16]})")


def _print_summary(out: Path, info: dict) -> None:
    """Mixtures per split and noise category, and a word when the music has no tags."""
    import pandas as pd

    from . import schema as S

    # Two columns of the table just written: the build validated it, no need to load it all.
    mixtures = pd.read_parquet(out / S.MIXTURES_FILE, columns=[S.SPLIT, S.NOISE_CATEGORY])
    kinds = mixtures[S.NOISE_CATEGORY].where(mixtures[S.NOISE_CATEGORY] != "", "clean")
    counts = mixtures.groupby([mixtures[S.SPLIT], kinds]).size()
    for split in S.SPLITS:
        if split in counts.index.get_level_values(0):
            part = counts[split]
            typer.echo(f"{split}: {int(part.sum()):,} mixtures ({', '.join(f'{k} {int(n):,}' for k, n in part.items())})")
    if not info[S.INFO_TAGS]:
        typer.echo("note: no clean clip has tags: this manifest can test robustness but cannot train a tagger "
                   "(give tags.csv beside the clean music, or one sub-folder per tag)")


def _on_error(value: str) -> str:
    from .errors import SpecError

    if value not in ("fail", "skip"):
        raise SpecError(f"--on-error {value!r}: choose fail or skip")
    return value


@app.command()
def render(
    manifest: Path = typer.Argument(..., help="Manifest directory."),
    out: Path = typer.Option(..., "--out", help="Directory for the audio files and renders table."),
    root: List[str] = typer.Option([], "--root", help=ROOT_HELP),
    stems: bool = typer.Option(False, "--stems", help="Also write the scaled clean and noise stems."),
    workers: int = typer.Option(1, "--workers", min=1, help="Parallel processes (output does not depend on it)."),
    shard: Optional[str] = typer.Option(None, "--shard", help="I/N: render every N-th row starting at I (for cluster array jobs)."),
    fmt: str = typer.Option("flac", "--format", help="flac or wav (16-bit PCM)."),
    loudness: bool = typer.Option(
        True, "--loudness/--no-loudness", help="Measure the BS.1770 loudness of each written file (pyloudnorm; "
        "the slowest step of a render, see benchmarks/bench_render.py)."),
    split: Optional[str] = typer.Option(None, "--split", help="Only render this split (train, valid or test)."),
    cache_dir: Optional[Path] = typer.Option(
        None, "--cache-dir", help="Keep decoded sources here as .npy (e.g. $NOISEMIX_CACHE/decoded): grids larger "
        "than memory then decode each source once, across noise groups, workers and re-runs."),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
):
    """Render mixtures to audio; resumable (re-run to finish) and shardable."""
    import numpy as np

    from . import schema as S
    from .render import parse_shard, render_manifest

    table = render_manifest(manifest, out, roots=_roots(root), stems=stems, fmt=fmt, workers=workers,
                            shard=parse_shard(shard), loudness=loudness, progress=progress, split=split,
                            cache_dir=cache_dir)
    mixtures = table[table[S.STEM] == S.STEM_MIXTURE]
    snrs = mixtures[S.MEASURED_SNR_DB].to_numpy()
    typer.echo(f"{len(mixtures)} mixtures in {out} ({int(np.isfinite(snrs).sum())} noisy)")


@app.command()
def verify(
    manifest: Path = typer.Argument(..., help="Manifest directory."),
    root: List[str] = typer.Option([], "--root", help=ROOT_HELP),
    renders: Optional[Path] = typer.Option(None, "--renders", help="Also check rendered files against their hashes."),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
):
    """Check that every source (and render) is present with the recorded hash and duration."""
    from .verify import HARMLESS, verify_manifest

    lines = verify_manifest(manifest, _roots(root), renders, progress)
    problems = [line for line in lines if HARMLESS not in line]
    for line in lines:
        typer.echo(("note: " if HARMLESS in line else "problem: ") + line, err=HARMLESS not in line)
    if problems:
        typer.echo(f"verify: {len(problems)} problem(s) in {manifest}", err=True)
        raise typer.Exit(1)
    typer.echo(f"verify: {manifest} matches its sources" + (" and renders" if renders else ""))


@app.command()
def stats(
    manifest: Path = typer.Argument(..., help="Manifest directory."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="PNG path for the SNR histogram (default: MANIFEST/snr_hist.png)."),
    csv: Optional[Path] = typer.Option(None, "--csv", help="Also write the counts table as CSV."),
):
    """Counts per split x category x SNR bin and per tag; the give-away cues (median level
    of the rows in dB re their clean segment, share of looped noise) per bin; and an SNR
    histogram PNG."""
    from .manifest import load_manifest
    from .stats import count_table, cue_table, plot_snr_histogram, tag_table

    loaded = load_manifest(manifest)
    counts = count_table(loaded)
    typer.echo(counts.to_string(index=False))
    typer.echo("")
    typer.echo(tag_table(loaded).to_string())
    typer.echo("\nlevel (dB re the clean segment) and looped noise, per bin:")
    typer.echo(cue_table(loaded).to_string(index=False))
    if csv:
        counts.to_csv(csv, index=False)
    path = plot_snr_histogram(loaded, plot or Path(manifest) / "snr_hist.png")
    typer.echo(f"\nSNR histogram: {path}" if path else "\nno noisy mixtures: no SNR histogram to plot")


@app.command()
def report(
    manifest: Path = typer.Argument(..., help="Manifest directory."),
    out: Path = typer.Option(..., "--out", help="Folder for the page (index.html) and its figures and audio."),
    renders: Optional[Path] = typer.Option(None, "--renders", help="A noisemix render folder of this manifest: "
                                           "example audio is copied from it (else rendered into the report)."),
    root: List[str] = typer.Option([], "--root", help=ROOT_HELP),
    split: str = typer.Option("test", "--split", help="The split the examples come from."),
    examples: int = typer.Option(1, "--examples", min=1, help="Examples per noise category x SNR bin."),
    runs: Optional[Path] = typer.Option(None, "--runs", help="A dat experiment folder (claims.md and plots) or a dat "
                                        "run (its evaluations' tables and plots): the page shows its results first."),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
):
    """Write a page to look at and listen to: the dataset card, counts per split x category
    x SNR bin, tag counts, SNR histograms, and example mixtures with players and spectrograms
    of the mixture and its clean and noise stems; with --runs, dat's results first. It opens
    from disk (no server, no network)."""
    from .report import write_report

    page = write_report(manifest, out, roots=_roots(root), renders=renders, split=split,
                        examples_per_cell=examples, runs=runs, progress=progress)
    typer.echo(f"report: {page}")


@app.command()
def card(
    manifest: Path = typer.Argument(..., help="Manifest directory."),
):
    """Write MANIFEST/README.md: contents, counts, how to regenerate and verify, licences, fingerprints."""
    from .card import write_card

    typer.echo(f"dataset card: {write_card(manifest)}")


@app.command()
def export(
    manifest: Path = typer.Argument(..., help="Manifest directory."),
    fmt: str = typer.Option(..., "--format", help="lhotse: a Lhotse CutSet (JSONL; .jsonl.gz compresses), one cut per "
                            "mixture, mixed from the sources on load; audiofolder: metadata.jsonl per split beside "
                            "rendered audio, for datasets.load_dataset('audiofolder'); csv: one row per mixture."),
    out: Optional[Path] = typer.Option(None, "--out", help="File to write, atomically (lhotse, csv)."),
    root: List[str] = typer.Option([], "--root", help="NAME=PATH: where a source root is on this machine "
                                   "(default: the folder recorded at build time)."),
    renders: Optional[Path] = typer.Option(None, "--renders", help="A `noisemix render` folder. lhotse: cuts over its "
                                           "mixture files (exact by construction) instead of the sources; "
                                           "audiofolder: where the metadata goes."),
):
    """Convert a manifest for neighbouring tools: Lhotse (pip install lhotse), Hugging Face datasets, or CSV."""
    from .export import export_manifest

    count, inexact = export_manifest(manifest, fmt, out, _roots(root), renders)
    typer.echo(f"{count} mixtures -> {out or renders}")
    for reason, cuts in sorted(inexact.items()):
        typer.echo(f"  {cuts} cut(s) not exactly our render: {reason}")
    if inexact:
        typer.echo("  (listed per cut in custom['noisemix_inexact']; --renders AUDIO gives exact cuts)")


cache_app = typer.Typer(no_args_is_help=True, add_completion=False,
                        help="What noisemix keeps in its cache folder ($NOISEMIX_CACHE, else ~/.cache/noisemix): "
                             "see, clear, limit.")
app.add_typer(cache_app, name="cache")


def _size(count: int) -> str:
    return f"{count / 2**30:.2f} GB" if count >= 2**30 else f"{count / 2**20:.1f} MB"


@cache_app.command("info")
def cache_info():
    """Where the cache is, and the files and size of each part."""
    from .cache import LIMIT_VARIABLE, cache_dir, cache_limit_bytes, cache_parts

    limit = cache_limit_bytes()
    typer.echo(f"cache: {cache_dir()} (decoded audio limit: {_size(limit) if limit else 'none'}; "
               f"set ${LIMIT_VARIABLE} to limit it)")
    for part in cache_parts():
        typer.echo(f"  {part.name:17} {part.files:7,} files {_size(part.bytes):>10}  {part.what}")


@cache_app.command("clear")
def cache_clear(
    part: List[str] = typer.Option([], "--part", help="Clear only this part (repeatable; see `noisemix cache info`). "
                                   "Default: every part."),
):
    """Delete what noisemix wrote to its cache (everything is recomputed when needed); nothing else is touched."""
    from .cache import CACHE_PARTS, cache_dir, clear_cache
    from .errors import NoisemixError

    unknown = sorted(set(part) - set(CACHE_PARTS))
    if unknown:
        raise NoisemixError(f"--part {unknown[0]!r}: choose from {', '.join(CACHE_PARTS)}")
    files, size = clear_cache(part or list(CACHE_PARTS))
    typer.echo(f"removed {files:,} files ({_size(size)}) from {cache_dir()}")


@cache_app.command("prune")
def cache_prune(max_gb: float = typer.Option(..., "--max-gb", min=0, help="Keep at most this much decoded audio.")):
    """Delete the least recently used decoded audio until it fits (builds, renders and dat do it by themselves
    under $NOISEMIX_CACHE_MAX_GB)."""
    from .cache import decoded_dir, prune_decoded

    files, size, _ = prune_decoded(decoded_dir(), int(max_gb * 2**30), keep=1.0)
    typer.echo(f"removed {files:,} least recently used files ({_size(size)}) from {decoded_dir()}")


def _mount_corpus() -> None:
    try:
        from .corpus.cli import corpus_app
    except ImportError:
        return
    app.add_typer(corpus_app, name="corpus", help="Assemble corpora (e.g. the demo corpus).")


_mount_corpus()


def _click():
    """click itself, or the copy that typer >= 0.2x vendors instead of depending on it."""
    try:
        import click
    except ImportError:
        from typer import _click as click
    return click


def main() -> None:
    """Entry point: user errors become one line on stderr and exit status 2."""
    from .errors import NoisemixError
    from .schema import ManifestError

    try:
        code = app(standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except (NoisemixError, ManifestError) as exc:
        typer.echo(f"noisemix: error: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.echo("noisemix: interrupted; finished outputs are kept, re-run to resume", err=True)
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.exit(1)
    except Exception as exc:  # click's usage errors
        click = _click()
        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise


if __name__ == "__main__":
    main()
