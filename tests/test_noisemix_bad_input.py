"""Each bad input gets one line naming the file and the problem, and no traceback."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from noisemix import schema as S


def run_cli(*args, env_cache=None):
    code = "import noisemix.cli as c; c.main()"
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True)


def one_line_error(result, *needles):
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = [l for l in result.stderr.splitlines() if l.startswith("noisemix: error:")]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture()
def corpus_copy(synthetic_corpus, tmp_path):
    copy = tmp_path / "corpus"
    shutil.copytree(synthetic_corpus, copy)
    return copy


def write_bad(path, kind):
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "corrupt":
        path.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk")
    elif kind == "truncated":
        sf.write(path, np.random.default_rng(0).uniform(-.5, .5, 22050), 22050, subtype="PCM_16")
        path.write_bytes(path.read_bytes()[:30])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "zero-length":
        sf.write(path, np.zeros(0), 22050, subtype="PCM_16")
    elif kind == "silent":
        sf.write(path, np.zeros(22050), 22050, subtype="PCM_16")
    elif kind == "nan":
        sf.write(path, np.full(22050, np.nan), 22050, subtype="FLOAT")
    elif kind == "six-channels":
        sf.write(path, np.random.default_rng(0).uniform(-.5, .5, (22050, 6)), 22050, subtype="PCM_16")
    elif kind == "unknown-format":
        path.write_bytes(b"this is not audio at all, just text" * 10)


@pytest.mark.parametrize("kind, problem", [
    ("corrupt", "unreadable"), ("truncated", "unreadable"), ("empty", "unreadable"),
    ("zero-length", "no audio frames"), ("silent", "silent"), ("nan", "NaN"),
    ("six-channels", "channel layout"), ("unknown-format", "unreadable"),
])
def test_bad_clean_file_fails_with_its_name_or_is_skipped(corpus_copy, tmp_path, kind, problem):
    name = "bad.mp3" if kind == "unknown-format" else "bad.wav"
    write_bad(corpus_copy / "clean" / name, kind)
    with open(corpus_copy / "clean" / "tags.csv", "a") as handle:
        handle.write(f"{name},high,badgroup\n")
    args = ["build", "--clean", corpus_copy / "clean", "--noise", corpus_copy / "noise", "--no-progress"]
    one_line_error(run_cli(*args, "--out", tmp_path / "m"), name, problem)
    assert not (tmp_path / "m" / S.MIXTURES_FILE).exists()
    skipped = run_cli(*args, "--out", tmp_path / "m2", "--on-error", "skip")
    assert skipped.returncode == 0, skipped.stderr
    assert "skipped: " in skipped.stdout and name in skipped.stdout
    report = json.loads((tmp_path / "m2" / S.INFO_FILE).read_text())["report"]
    assert any(name in line and problem in line for line in report["skipped_files"])


@pytest.mark.parametrize("kind, problem", [
    ("dangling", "a symbolic link to a missing file"), ("loop", "a symbolic link loop"),
    ("one-sample", "too short for noise: 1 sample(s)"),
])
def test_bad_noise_entries_fail_in_one_line_or_are_counted_skips(corpus_copy, tmp_path, kind, problem):
    folder = corpus_copy / "noise" / "environmental"
    if kind == "dangling":
        (folder / "bad.wav").symlink_to(folder / "nowhere.wav")
    elif kind == "loop":
        (folder / "bad.wav").symlink_to(folder / "other.wav")
        (folder / "other.wav").symlink_to(folder / "bad.wav")
    else:
        sf.write(folder / "bad.wav", np.array([0.5]), 22050, subtype="PCM_16")
    args = ["build", "--clean", corpus_copy / "clean", "--noise", corpus_copy / "noise", "--no-progress"]
    one_line_error(run_cli(*args, "--out", tmp_path / "m", "--on-error", "fail"), "bad.wav", problem)
    skipped = run_cli(*args, "--out", tmp_path / "m2", "--on-error", "skip")
    assert skipped.returncode == 0 and "Traceback" not in skipped.stderr, skipped.stderr
    report = json.loads((tmp_path / "m2" / S.INFO_FILE).read_text())["report"]
    assert any("bad.wav" in line and problem in line for line in report["skipped_files"])


def test_an_unreadable_folder_is_named_not_dropped(corpus_copy, monkeypatch):
    import os

    from noisemix.errors import AudioError
    from noisemix.sources import CorpusInput, scan

    locked = corpus_copy / "noise" / "speech"
    real = os.scandir

    def scandir(path="."):  # as root every folder is readable: deny this one as a user's permissions would
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    inputs = [CorpusInput("syn", corpus_copy, "clean", subdir="clean"),
              CorpusInput("syn", corpus_copy, "noise", subdir="noise")]
    with pytest.raises(AudioError, match="folder not readable \\(Permission denied\\)"):
        scan(inputs, on_error="fail", progress=False, use_cache=False)
    result = scan(inputs, on_error="skip", progress=False, use_cache=False)
    assert any(str(locked) in line and "not listed" in line for line in result.problems)
    assert not result.sources[S.PATH].str.startswith("noise/speech/").any()


def test_a_file_libsndfile_calls_a_system_error_gets_the_systems_reason(corpus_copy, monkeypatch):
    import builtins

    import noisemix.audio
    from noisemix.sources import examine_file

    path = corpus_copy / "clean" / "piece000.flac"

    def info(name):  # what libsndfile says of a file it may not open
        raise sf.LibsndfileError(2, f"Error opening {name!r}: ")

    def deny(name, *args, **kwargs):  # as root every file is readable: deny this one
        if Path(name) == path:
            raise PermissionError(13, "Permission denied", str(name))
        return builtins.open(name, *args, **kwargs)

    monkeypatch.setattr(noisemix.audio.sf, "info", info)
    monkeypatch.setattr(noisemix.audio, "open", deny, raising=False)
    assert examine_file(str(path)) == "unreadable (Permission denied)"


def test_other_sample_rates_are_resampled_and_noted(corpus_copy, tmp_path):
    audio, rate = sf.read(corpus_copy / "clean" / "piece000.flac")
    import soxr

    sf.write(corpus_copy / "clean" / "piece000.flac", soxr.resample(audio, rate, 44100), 44100, subtype="PCM_16")
    result = run_cli("build", "--clean", corpus_copy / "clean", "--noise", corpus_copy / "noise",
                     "--out", tmp_path / "m", "--no-progress")
    assert result.returncode == 0, result.stderr
    assert "1 file(s) at 44100 Hz" in result.stdout


def test_unknown_noise_category_and_missing_folder(corpus_copy, tmp_path):
    one_line_error(run_cli("build", "--clean", corpus_copy / "clean", "--noise", f"traffic={corpus_copy}/noise",
                           "--out", tmp_path / "m"), "traffic")
    one_line_error(run_cli("build", "--clean", tmp_path / "nowhere", "--noise", corpus_copy / "noise",
                           "--out", tmp_path / "m"), "nowhere", "not found")


@pytest.fixture()
def manifest_copy(built_manifest, tmp_path):
    copy = tmp_path / "manifest"
    shutil.copytree(built_manifest, copy)
    return copy


def rewrite_sources(manifest, change):
    table = pd.read_parquet(manifest / S.SOURCES_FILE)
    change(table)
    table.to_parquet(manifest / S.SOURCES_FILE)


@pytest.mark.parametrize("path, needle", [("/etc/passwd", "relative"), ("../outside.wav", "climbs out"),
                                          ("clean/../../x.wav", "climbs out")])
def test_manifest_paths_must_stay_inside_their_root(manifest_copy, path, needle):
    def change(table):
        table.loc[0, S.PATH] = path
    rewrite_sources(manifest_copy, change)
    one_line_error(run_cli("render", manifest_copy, "--out", manifest_copy / "r"), needle)
    verified = run_cli("verify", manifest_copy, "--no-progress")
    assert verified.returncode == 1 and needle in verified.stderr


@pytest.mark.parametrize("column, value, needle", [(S.SPLIT, "../../x", "is not one of train, valid, test"),
                                                   (S.MIXTURE_ID, "../../escape", "is not a plain file name"),
                                                   (S.MIXTURE_ID, "copy", "duplicate mixture id")])
def test_rendered_file_names_from_a_manifest_stay_inside_the_output(manifest_copy, column, value, needle):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(manifest_copy / S.MIXTURES_FILE)
    values = table.column(column).to_pylist()
    values[0] = values[1] if value == "copy" else value
    table = table.set_column(table.schema.get_field_index(column), column, pa.array(values, pa.string()))
    pq.write_table(table, manifest_copy / S.MIXTURES_FILE)
    one_line_error(run_cli("render", manifest_copy, "--out", manifest_copy / "r" / "out"), needle)
    assert not (manifest_copy / "r").exists()


def test_verify_recomputes_the_fingerprints_and_names_the_table_that_differs(manifest_copy):
    import pyarrow as pa
    import pyarrow.parquet as pq

    assert run_cli("verify", manifest_copy, "--no-progress").returncode == 0
    info = json.loads((manifest_copy / S.INFO_FILE).read_text())
    edited = dict(info, fingerprints=dict(info["fingerprints"], mixtures="0" * 64))
    (manifest_copy / S.INFO_FILE).write_text(json.dumps(edited))
    result = run_cli("verify", manifest_copy, "--no-progress")
    assert result.returncode == 1 and "mixtures.parquet: its content does not match" in result.stderr
    assert "sources.parquet" not in result.stderr
    (manifest_copy / S.INFO_FILE).write_text(json.dumps(info))  # the record as built, the rows edited
    table = pq.read_table(manifest_copy / S.MIXTURES_FILE)
    gains = table.column(S.NOISE_GAIN).to_pylist()
    gains[-1] *= 2.0
    index = table.schema.get_field_index(S.NOISE_GAIN)
    pq.write_table(table.set_column(index, S.NOISE_GAIN, pa.array(gains, table.schema.field(index).type)),
                   manifest_copy / S.MIXTURES_FILE)
    result = run_cli("verify", manifest_copy, "--no-progress")
    assert result.returncode == 1 and "mixtures.parquet: its content does not match" in result.stderr


def test_verify_accepts_manifests_with_optional_columns_as_built(corpus_inputs, tmp_path):
    from noisemix.build import build_manifest
    from noisemix.manifest import fingerprint_differences
    from noisemix.spec import BuildSpec

    build_manifest(corpus_inputs, BuildSpec(seed=2, folds=3, noise_fill="concat"), tmp_path / "m", progress=False)
    assert json.loads((tmp_path / "m" / S.INFO_FILE).read_text())["schema_version"] == 3
    assert fingerprint_differences(tmp_path / "m") == []
    root = Path(__file__).resolve().parents[1] / "manifests"
    for committed in ("demo", "demo-grid"):  # the shared benchmarks verify as committed
        assert fingerprint_differences(root / committed) == []


def _edit_noisy_row(manifest, column, value):
    """Set ``column`` of the first noisy row (a noise segment that is not looped) to ``value``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(manifest / S.MIXTURES_FILE)
    noisy = [i for i, (noise, looped) in enumerate(zip(table.column(S.NOISE_SOURCE_ID).to_pylist(),
                                                       table.column(S.NOISE_LOOPED).to_pylist())) if noise and not looped]
    values = table.column(column).to_pylist()
    values[noisy[0]] = value
    index = table.schema.get_field_index(column)
    pq.write_table(table.set_column(index, column, pa.array(values, table.schema.field(index).type)),
                   manifest / S.MIXTURES_FILE)
    return table.column(S.MIXTURE_ID)[noisy[0]].as_py()


@pytest.mark.parametrize("column, value, needle", [
    (S.NOISE_GAIN, float("nan"), "is not a finite gain >= 0"), (S.CLEAN_GAIN, float("inf"), "is not a finite gain"),
    (S.CLEAN_GAIN, -0.5, "is not a finite gain >= 0"), (S.SNR_DB, float("nan"), "is not a finite SNR"),
    (S.CLEAN_OFFSET, -3, "is negative"), (S.NOISE_OFFSET, -1, "is negative"),
    (S.NUM_FRAMES, 10 ** 10, "runs past the end of its source"),
    (S.NOISE_OFFSET, 10 ** 9, "runs past the end of its source (noise_source_id)"),
    (S.SAMPLE_RATE, 0, "is not a sample rate > 0"), (S.NOISE_CATEGORY, "weather", "is not one of environmental"),
    (S.TAGS, ["no-such-tag"], "outside the vocabulary"),
])
def test_rows_with_impossible_values_are_refused_on_load_in_one_line(manifest_copy, column, value, needle):
    mixture = _edit_noisy_row(manifest_copy, column, value)
    line = one_line_error(run_cli("render", manifest_copy, "--out", manifest_copy / "r"), needle, column, mixture)
    assert "mixtures.parquet" in line and not (manifest_copy / "r").exists()  # nothing written, no journal
    verified = run_cli("verify", manifest_copy, "--no-progress")
    assert verified.returncode == 1 and needle in verified.stderr and "Traceback" not in verified.stderr


@pytest.mark.parametrize("stored, needle", [
    ('[{"name": "AddBackgroundNoise", "init": {"sounds_path": "/etc"}, "parameters": {}}]', "'AddBackgroundNoise' is not one"),
    ('[{"name": "Lambda", "init": {}, "parameters": {}}]', "'Lambda' is not one"),
    ('[{"name": "Gain", "init": {"min_gain_db": {"x": 1}}, "parameters": {}}]', "settings must be plain"),
    ("not json", "not valid JSON"),
])
def test_a_manifest_may_only_name_listed_transforms_with_plain_settings(manifest_copy, stored, needle):
    mixture = _edit_noisy_row(manifest_copy, S.NOISE_TRANSFORMS, stored)
    one_line_error(run_cli("render", manifest_copy, "--out", manifest_copy / "r"), needle, mixture,
                   S.NOISE_TRANSFORMS)
    assert not (manifest_copy / "r").exists()


def test_build_refuses_transforms_that_read_files(synthetic_corpus, tmp_path):
    one_line_error(run_cli("build", "--clean", synthetic_corpus / "clean", "--noise", synthetic_corpus / "noise",
                           "--noise-transform", f"AddBackgroundNoise:sounds_path={synthetic_corpus}",
                           "--out", tmp_path / "m"), "'AddBackgroundNoise' is not one")


def test_the_trainer_refuses_an_invalid_manifest_in_one_line(manifest_copy, tmp_path):
    _edit_noisy_row(manifest_copy, S.NOISE_GAIN, float("inf"))
    result = subprocess.run([sys.executable, "-m", "dat", "train", "-m", str(manifest_copy), "--out",
                             str(tmp_path / "run"), "--preset", "tiny"], capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "is not a finite gain" in result.stderr


def test_manifest_with_missing_column(manifest_copy):
    table = pd.read_parquet(manifest_copy / S.MIXTURES_FILE).drop(columns=[S.NOISE_GAIN])
    table.to_parquet(manifest_copy / S.MIXTURES_FILE)
    one_line_error(run_cli("stats", manifest_copy), S.NOISE_GAIN, "missing column")


def test_manifest_from_a_newer_schema(manifest_copy):
    info = json.loads((manifest_copy / S.INFO_FILE).read_text())
    info["schema_version"] = S.SCHEMA_VERSION + 1
    (manifest_copy / S.INFO_FILE).write_text(json.dumps(info))
    one_line_error(run_cli("render", manifest_copy, "--out", manifest_copy / "r"), "newer")


def test_missing_root_is_named(manifest_copy, tmp_path):
    result = run_cli("verify", manifest_copy, "--root", f"syn={tmp_path / 'gone'}", "--no-progress")
    assert result.returncode == 1 and "missing" in result.stderr
    one_line_error(run_cli("render", manifest_copy, "--out", tmp_path / "r", "--root", "oops"), "NAME=PATH")


def test_corrupt_parquet(manifest_copy):
    (manifest_copy / S.MIXTURES_FILE).write_bytes(b"PAR1 not really")
    one_line_error(run_cli("stats", manifest_copy), "parquet")


def test_bad_options_say_how_to_fix_them(tmp_path):
    one_line_error(run_cli("build", "--snr", "20:-5", "--out", tmp_path / "m"), "--snr")
    one_line_error(run_cli("build", "--design", "grid", "--out", tmp_path / "m"), "grid")
    one_line_error(run_cli("render", tmp_path, "--out", tmp_path / "r", "--shard", "3/2"), "--shard")


def test_source_missing_at_render_time_is_named_even_from_a_worker(manifest_copy, synthetic_corpus, tmp_path):
    copy = tmp_path / "corpus"
    shutil.copytree(synthetic_corpus, copy)
    victim = pd.read_parquet(manifest_copy / S.SOURCES_FILE)[S.PATH].iloc[0]
    (copy / victim).unlink()
    result = run_cli("render", manifest_copy, "--out", tmp_path / "r", "--root", f"syn={copy}", "--workers", "2",
                     "--no-progress")
    one_line_error(result, victim.split("/")[-1], "file not found")
