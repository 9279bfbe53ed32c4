"""A page to look at and listen to: ``noisemix report``.

One self-contained folder (``index.html`` with its ``figures/`` and ``audio/``; no server,
no network) per benchmark: the SNR histograms per category, the counts per split x
category x SNR bin, example mixtures (a few per noise category x SNR bin, chosen from
(seed, mixture id), so every run picks the same ones) with players for the mixture and its
clean and noise stems and a spectrogram of each, the tag counts, and the dataset card.
"""

from __future__ import annotations

import html
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from . import dsp
from . import schema as S
from .errors import NoisemixError
from .io import atomic_path, write_text
from .manifest import Manifest, load_manifest
from .mix import Mixer
from .render import _write_audio, load_renders, rendered_files
from .rng import stable_key
from .stats import count_table, plot_snr_histogram, snr_bins, tag_table

__all__ = ["write_report", "choose_examples", "REPORT_FILE"]

REPORT_FILE = "index.html"


def write_report(manifest_dir: Path, out: Path, *, roots=None, renders: Path | None = None, split: str = "test",
                 examples_per_cell: int = 1, runs: Path | None = None, progress: bool = True) -> Path:
    """Write the report of the manifest in ``manifest_dir`` into ``out``; return its page.

    Example audio is copied from ``renders`` (a ``noisemix render`` folder of this manifest,
    stale renders refused) where it holds the file, else rendered here with the mixing
    kernel, as ``noisemix render`` would write it (16-bit FLAC). ``runs``: a ``dat
    experiment`` folder or a ``dat`` run (its evaluations) whose results the page shows first.
    """
    manifest = load_manifest(manifest_dir, roots)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    examples = choose_examples(manifest, split, examples_per_cell)
    results = [("Results", _results_html(Path(runs), out))] if runs is not None else []
    sections = results + [  # what people look at first; the card (all the facts) last
        ("SNR per noise category", _histogram_html(manifest, out)),
        ("Mixtures per split x category x SNR bin", _counts_html(manifest)),
        (f"Examples ({split} split)", _examples_html(manifest, examples, out, renders, progress)),
        ("Tags", _tags_html(manifest)),
        ("Dataset card", _card_html(manifest)),
    ]
    page = out / REPORT_FILE
    write_text(_page(f"noisemix report: {manifest.directory.name}", sections), page)
    return page


def choose_examples(manifest: Manifest, split: str, per_cell: int) -> pd.DataFrame:
    """``per_cell`` noisy rows of ``split`` per noise category x SNR bin, in category and
    SNR order: those first in the order of ``stable_key(seed, mixture id)``, so the choice
    depends on nothing but the manifest."""
    rows = manifest.mixtures[(manifest.mixtures[S.SPLIT] == split) & (manifest.mixtures[S.NOISE_CATEGORY] != "")]
    if rows.empty:
        return rows.assign(snr_bin=pd.Series(dtype=object))
    seed = manifest.seed
    rows = rows.assign(snr_bin=snr_bins(rows[S.SNR_DB]),
                       _order=[stable_key("report", seed, mid) for mid in rows[S.MIXTURE_ID]])
    picked = rows.sort_values("_order", kind="stable").groupby([S.NOISE_CATEGORY, "snr_bin"], sort=False).head(per_cell)
    category_order = {c: i for i, c in enumerate(S.CATEGORIES)}
    picked = picked.assign(_category=picked[S.NOISE_CATEGORY].map(category_order).fillna(len(category_order)))
    return picked.sort_values(["_category", S.SNR_DB, S.MIXTURE_ID]).drop(columns=["_order", "_category"])


def _card_html(manifest: Manifest) -> str:
    from .card import card_text

    return _markdown_html(card_text(manifest))


def _markdown_html(text: str) -> str:
    """Markdown as HTML, its headings below the page's section heading."""
    import markdown

    text = markdown.markdown(text, extensions=["tables"])
    for level in (3, 2, 1):
        text = text.replace(f"<h{level}>", f"<h{level + 2}>").replace(f"</h{level}>", f"</h{level + 2}>")
    return text


def _results_html(runs: Path, out: Path) -> str:
    """dat's results in ``runs``: an experiment's ``claims.md`` (verdicts, differences with
    their confidence intervals per condition and noise category) and plots (ROC-AUC vs SNR
    per method with confidence bands, ...), or a run's evaluations (``RUN/NAME/table.md``
    and plots). Plots are copied into the report, which stays self-contained."""
    if (runs / "claims.md").is_file():
        parts = [(runs / "claims.md", "experiment")]
    else:
        tables = [runs / "table.md"] if (runs / "table.md").is_file() else sorted(runs.glob("*/table.md"))
        parts = [(table, table.parent.name) for table in tables]
    if not parts:
        raise NoisemixError(f"--runs {runs}: no dat results there (a dat experiment folder with claims.md, "
                            f"or a run evaluated by dat evaluate, RUN/NAME/table.md)")
    blocks = []
    for table, name in parts:
        images = []
        for plot in sorted(table.parent.glob("*.png")):
            target = out / "figures" / "results" / name / plot.name
            _copy(plot, target)
            images.append(f'<img src="{target.relative_to(out).as_posix()}" alt="{html.escape(plot.stem)}">')
        blocks.append(f"<h3>{html.escape(name)}</h3>\n" + "\n".join(images) + _markdown_html(table.read_text("utf-8")))
    return "\n".join(blocks)


def _counts_html(manifest: Manifest) -> str:
    counts = count_table(manifest)
    if counts.empty:
        return "<p>The manifest has no mixtures.</p>"
    table = counts.pivot_table(index=[S.SPLIT, S.NOISE_CATEGORY], columns="snr_bin", values="mixtures",
                               aggfunc="sum", fill_value=0, sort=False)
    return table.to_html(classes="counts", border=0)


def _tags_html(manifest: Manifest) -> str:
    tags = tag_table(manifest)
    if tags.empty:
        return "<p>No clean clip has tags: this benchmark tests robustness but cannot train a tagger.</p>"
    return tags.to_html(classes="tags", border=0)


def _histogram_html(manifest: Manifest, out: Path) -> str:
    path = plot_snr_histogram(manifest, out / "figures" / "snr_hist.png")
    if path is None:
        return "<p>No noisy mixtures: there is no SNR to plot.</p>"
    return f'<img src="{path.relative_to(out).as_posix()}" alt="SNR histograms per noise category">'


def _examples_html(manifest: Manifest, examples: pd.DataFrame, out: Path, renders: Path | None, progress: bool) -> str:
    from tqdm import tqdm

    if examples.empty:
        return "<p>No noisy mixtures in this split: no examples to show.</p>"
    files = rendered_files(load_renders(renders, manifest)) if renders is not None else {}
    mixer = Mixer(manifest)
    (out / "audio").mkdir(parents=True, exist_ok=True)
    header = "<tr><th>category</th><th>SNR (dB)</th><th>mixture</th>" + "".join(
        f"<th>{stem}</th>" for stem in S.STEMS) + "</tr>"
    lines = []
    for _, row in tqdm(examples.iterrows(), total=len(examples), desc="report examples", unit="mix",
                       disable=not progress):
        cells, mixed = [], None
        for stem in S.STEMS:
            target = out / "audio" / f"{row[S.MIXTURE_ID]}.{stem}.flac"
            source = files.get(stem, {}).get(row[S.MIXTURE_ID])
            if source is not None:  # a copied render: its spectrogram is drawn from the file
                target = target.with_suffix(Path(source).suffix)
                _copy(Path(renders) / source, target)
                samples = None
            else:  # the row mixed once for all its stems, written as noisemix render writes it (FLAC)
                mixed = mixed or mixer.mixed(row)
                samples = dsp.to_pcm16(getattr(mixed, stem))
                _write_audio(str(target), samples, manifest.sample_rate, "flac")
            cells.append(_stem_cell(target, out, samples, manifest.sample_rate))
        lines.append(f"<tr><td>{html.escape(row[S.NOISE_CATEGORY])}</td><td>{row[S.SNR_DB]:g}</td>"
                     f"<td><code>{html.escape(row[S.MIXTURE_ID])}</code></td>{''.join(cells)}</tr>")
    return f'<table class="examples">{header}{"".join(lines)}</table>'


def _stem_cell(audio_path: Path, out: Path, pcm: np.ndarray | None, sample_rate: int) -> str:
    """A player and a spectrogram of one stem: of ``pcm`` as written, else read from the file."""
    if pcm is None:
        import soundfile as sf

        samples, sample_rate = sf.read(audio_path, dtype="float32", always_2d=True)
        samples = samples.mean(axis=1)
    else:
        samples = dsp.from_pcm16(pcm)
    image = out / "figures" / f"{audio_path.stem}.png"
    _plot_spectrogram(samples, sample_rate, image)
    relative = audio_path.relative_to(out).as_posix()
    return (f'<td><audio controls preload="metadata" src="{relative}"></audio><br>'
            f'<img class="spec" src="{image.relative_to(out).as_posix()}" alt="spectrogram of {relative}"></td>')


def _copy(source: Path, target: Path) -> None:
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)


def _plot_spectrogram(samples: np.ndarray, sample_rate: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axis = plt.subplots(figsize=(3.2, 1.4), dpi=80)
    with np.errstate(divide="ignore"):  # silent frames are -inf dB: drawn as the floor
        axis.specgram(samples, NFFT=512, noverlap=256, Fs=sample_rate, cmap="magma", scale="dB", vmin=-120)
    axis.set_axis_off()
    fig.subplots_adjust(0, 0, 1, 1)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def _page(title: str, sections: list[tuple[str, str]]) -> str:
    body = "\n".join(f"<section><h2>{html.escape(name)}</h2>\n{content}\n</section>" for name, content in sections)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5em 0; }}
th, td {{ border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: right; vertical-align: top; }}
table.examples td {{ text-align: left; }}
img {{ max-width: 100%; }}
audio {{ width: 260px; }}
code {{ font-size: 0.85em; }}
</style></head>
<body><h1>{html.escape(title)}</h1>
{body}
</body></html>
"""
