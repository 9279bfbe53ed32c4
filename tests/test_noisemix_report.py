"""noisemix report: a page that opens from disk, whose every image and audio file exists."""

from __future__ import annotations

import dataclasses
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from noisemix import load_manifest
from noisemix import schema as S
from noisemix.render import render_manifest
from noisemix.report import REPORT_FILE, _histogram_html, choose_examples, write_report
from noisemix.stats import histogram_edges, snr_bins


class _Sources(HTMLParser):
    """Every ``src`` of the page's audio and img elements."""

    def __init__(self):
        super().__init__()
        self.sources: dict[str, list[str]] = {"audio": [], "img": []}

    def handle_starttag(self, tag, attrs):
        if tag in self.sources:
            self.sources[tag].append(dict(attrs)["src"])


def page_sources(page: Path) -> dict[str, list[str]]:
    parser = _Sources()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser.sources


@pytest.fixture(scope="module")
def report(built_manifest, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    return write_report(built_manifest, out, progress=False)


def test_the_page_shows_card_counts_tags_histogram_and_examples(built_manifest, report):
    manifest = load_manifest(built_manifest)
    text = report.read_text(encoding="utf-8")
    for heading in ("Dataset card", "Mixtures per split x category x SNR bin", "Tags", "SNR per noise category",
                    "Examples (test split)"):
        assert f"<h2>{heading}</h2>" in text
    assert manifest.info["fingerprints"]["mixtures"] in text  # the card's fingerprints
    assert "http://" not in text and "https://" not in text  # nothing fetched from the network
    sources = page_sources(report)
    test = manifest.mixtures[(manifest.mixtures[S.SPLIT] == "test") & (manifest.mixtures[S.NOISE_CATEGORY] != "")]
    cells = len(test.groupby([test[S.NOISE_CATEGORY], snr_bins(test[S.SNR_DB])]))
    assert len(sources["audio"]) == 3 * cells  # mixture, clean and noise of one example per cell
    assert len(sources["img"]) == 1 + 3 * cells  # the histogram and a spectrogram per player
    for src in sources["img"]:
        assert (report.parent / src).read_bytes()[:4] == b"\x89PNG", src
    frames = manifest.mixtures.set_index(S.MIXTURE_ID)[S.NUM_FRAMES]
    for src in sources["audio"]:
        info = sf.info(report.parent / src)
        assert info.frames == frames[Path(src).name.split(".")[0]] and info.samplerate == manifest.sample_rate


def test_examples_depend_on_the_manifest_only(built_manifest):
    manifest = load_manifest(built_manifest)
    first = choose_examples(manifest, "test", 2)[S.MIXTURE_ID].tolist()
    shuffled = dataclasses.replace(manifest, mixtures=manifest.mixtures.sample(frac=1.0, random_state=4))
    assert choose_examples(shuffled, "test", 2)[S.MIXTURE_ID].tolist() == first
    assert len(set(first)) == len(first) and choose_examples(manifest, "nope", 2).empty


def test_example_audio_is_copied_from_renders(built_manifest, tmp_path):
    rendered = tmp_path / "audio"
    render_manifest(built_manifest, rendered, stems=True, fmt="wav", split="test", progress=False, loudness=False)
    page = write_report(built_manifest, tmp_path / "report", renders=rendered, progress=False)
    for src in page_sources(page)["audio"]:
        name = Path(src).name
        mixture_id, stem = name.split(".")[:2]
        original = rendered / "test" / (f"{mixture_id}.wav" if stem == "mixture" else f"{mixture_id}.{stem}.wav")
        assert (page.parent / src).read_bytes() == original.read_bytes(), name


def test_a_manifest_without_noise_is_said_to_have_nothing_to_plot(built_manifest, tmp_path):
    manifest = load_manifest(built_manifest)
    clean_only = dataclasses.replace(manifest, mixtures=manifest.mixtures[manifest.mixtures[S.NOISE_CATEGORY] == ""])
    assert _histogram_html(clean_only, tmp_path) == "<p>No noisy mixtures: there is no SNR to plot.</p>"
    assert not list(tmp_path.rglob("*.png"))


@pytest.mark.parametrize("snr", [np.repeat([-5.0, 0, 5, 10, 15, 20], 7),
                                 np.random.default_rng(1).uniform(-5, 20, 500), np.array([3.0, 3.0])])
def test_histogram_bins_hold_every_snr_inside_and_cover_the_range(snr):
    edges = histogram_edges(snr)
    position = np.searchsorted(edges, snr, side="right") - 1
    assert (position >= 0).all() and (position < len(edges) - 1).all()
    assert not np.isin(snr, edges).any()  # no value on an edge
    levels = np.unique(snr)
    if len(levels) <= 6:  # a grid: each level at the centre of its own bin
        np.testing.assert_allclose((edges[:-1] + edges[1:]) / 2, levels)
    else:  # a range: 1 dB bins from its floor to just past its highest value
        assert edges[0] == np.floor(snr.min()) and snr.max() < edges[-1] <= np.ceil(snr.max()) + 1
        np.testing.assert_allclose(np.diff(edges), 1.0)


def test_report_cli(built_manifest, tmp_path):
    from typer.testing import CliRunner

    from noisemix.cli import app

    result = CliRunner().invoke(app, ["report", str(built_manifest), "--out", str(tmp_path / "r"), "--no-progress",
                                      "--examples", "1", "--split", "valid"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "r" / REPORT_FILE).is_file() and "Examples (valid split)" in (tmp_path / "r" / REPORT_FILE).read_text()
    assert result.output.split(":")[0] == "report"


CLAIMS = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "demo-claims"


def test_an_experiment_s_results_come_first_with_its_plots(built_manifest, tmp_path):
    page = write_report(built_manifest, tmp_path / "report", runs=CLAIMS, progress=False)
    text = page.read_text(encoding="utf-8")
    assert text.index("<h2>Results</h2>") < text.index("<h2>SNR per noise category</h2>")
    assert "DAT beats source-only on noisy music" in text and "<table>" in text  # claims.md, as HTML
    copied = [src for src in page_sources(page)["img"] if src.startswith("figures/results/")]
    assert sorted(Path(src).name for src in copied) == sorted(p.name for p in CLAIMS.glob("*.png"))
    for src in copied:
        assert (page.parent / src).read_bytes() == (CLAIMS / Path(src).name).read_bytes()


def test_a_run_s_evaluations_are_shown(built_manifest, tmp_path):
    run = tmp_path / "run"
    (run / "eval").mkdir(parents=True)
    (run / "eval" / "table.md").write_text("| condition | dat |\n|---|---|\n| noisy 0 dB | 71.2 / 30.1 |\n")
    (run / "eval" / "auc_vs_snr.png").write_bytes((CLAIMS / "auc_vs_snr.png").read_bytes())
    text = write_report(built_manifest, tmp_path / "report", runs=run, progress=False).read_text(encoding="utf-8")
    assert "<h3>eval</h3>" in text and "noisy 0 dB" in text and 'src="figures/results/eval/auc_vs_snr.png"' in text


def test_runs_without_results_are_one_line(built_manifest, tmp_path):
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "noisemix", "report", str(built_manifest), "--out",
                             str(tmp_path / "r"), "--runs", str(tmp_path), "--no-progress"], capture_output=True, text=True)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "no dat results there" in result.stderr and not (tmp_path / "r" / REPORT_FILE).exists()


def test_tables_and_scores_group_snrs_by_one_definition():
    import pandas as pd

    from noisemix import snr_group_label, snr_groups

    grid = pd.Series([-5.0, 0.0, np.nan, 4.99999, 5.0, 20.0])
    assert list(snr_bins(grid)) == ["-5.0", "0.0", "clean", "5.0", "5.0", "20.0"]
    thirteen_levels = pd.Series(np.arange(13) * 2.0 - 5)  # past GRID_LEVELS_MAX: binned, as dat scores them
    keys, width = snr_groups(thirteen_levels.to_numpy())
    assert width == 5.0 and list(snr_bins(thirteen_levels)) == [snr_group_label(k, width) for k in keys]
    assert list(snr_bins(thirteen_levels))[:4] == ["-5.0..0.0", "-5.0..0.0", "-5.0..0.0", "0.0..5.0"]
    assert len(histogram_edges(thirteen_levels)) - 1 == 25  # a range: 1 dB bins from -5 to 20
