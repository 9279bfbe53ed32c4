import subprocess
import sys

import pandas as pd

from noisemix import schema as S


def cli(*args, **env):
    import os

    result = subprocess.run([sys.executable, "-c", "import noisemix.cli as c; c.main()", *map(str, args)],
                            capture_output=True, text=True, env={**os.environ, **env})
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_contract_commands_end_to_end(synthetic_corpus, tmp_path):
    out = tmp_path / "m"
    built = cli("build", "--clean", synthetic_corpus / "clean", "--noise", f"speech={synthetic_corpus}/noise/speech",
        "--noise", f"music={synthetic_corpus}/noise/music", "--snr", "-5:20", "--seed", "0", "--out", out,
        "--workers", "2", "--on-error", "fail", "--no-progress")
    sources = pd.read_parquet(out / S.SOURCES_FILE)
    assert set(sources[S.ROOT]) == {"clean", "speech", "music"}
    mixtures = pd.read_parquet(out / S.MIXTURES_FILE)
    summary = [line for line in built.splitlines() if line.startswith("train: ")]
    assert summary == [f"train: {(mixtures[S.SPLIT] == 'train').sum():,} mixtures (clean "
                       f"{((mixtures[S.SPLIT] == 'train') & (mixtures[S.NOISE_CATEGORY] == '')).sum():,}, music "
                       f"{((mixtures[S.SPLIT] == 'train') & (mixtures[S.NOISE_CATEGORY] == 'music')).sum():,}, speech "
                       f"{((mixtures[S.SPLIT] == 'train') & (mixtures[S.NOISE_CATEGORY] == 'speech')).sum():,})"]
    assert "no clean clip has tags" not in built
    assert set(sources.loc[sources[S.ROLE] == "noise", S.CATEGORY]) == {"speech", "music"}
    cli("render", out, "--out", tmp_path / "a", "--stems", "--workers", "2", "--shard", "0/2", "--format", "wav",
        "--no-progress")
    cli("render", out, "--out", tmp_path / "a", "--stems", "--workers", "2", "--shard", "1/2", "--format", "wav",
        "--no-progress", "--cache-dir", tmp_path / "decoded")
    assert len(list((tmp_path / "decoded").rglob("*.npy"))) > 1  # the second shard's sources, decoded once
    assert "matches its sources and renders" in cli("verify", out, "--renders", tmp_path / "a", "--no-progress")
    text = cli("stats", out, "--csv", tmp_path / "counts.csv")
    assert "speech" in text and "-5.0..0.0" in text  # a random design: 5 dB bins
    assert (out / "snr_hist.png").read_bytes()[:4] == b"\x89PNG"
    counts = pd.read_csv(tmp_path / "counts.csv")
    assert counts["mixtures"].sum() == len(pd.read_parquet(out / S.MIXTURES_FILE))


def test_roots_move_with_the_data(synthetic_corpus, tmp_path):
    import shutil

    cli("build", "--clean", synthetic_corpus / "clean", "--noise", synthetic_corpus / "noise", "--out", tmp_path / "m",
        "--no-progress")
    moved = tmp_path / "elsewhere"
    shutil.copytree(synthetic_corpus / "clean", moved / "clean")
    shutil.copytree(synthetic_corpus / "noise", moved / "noise")
    cli("verify", tmp_path / "m", "--root", f"clean={moved / 'clean'}", "--root", f"noise={moved / 'noise'}", "--no-progress")


def test_default_corpus_build_and_help(tmp_path):
    text = cli("build", "--snr", "-5:20", "--out", tmp_path / "m", "--no-progress", NOISEMIX_DEFAULT_CORPUS="synthetic")
    assert "built-in default corpus (SYNTHETIC" in text
    assert "--snr" in cli("build", "--help") and "--shard" in cli("render", "--help")


def test_level_noise_fill_loop_limit_and_fold_flags_reach_the_recorded_spec(tmp_path):
    import json

    text = cli("build", "--snr", "-5:20", "--noise-fill", "concat", "--max-loops", "2", "--folds", "3",
               "--headroom-db", "9", "--level", "match-clean", "--out", tmp_path / "m", "--no-progress",
               NOISEMIX_DEFAULT_CORPUS="synthetic")
    assert "looped noise: " in text
    info = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert {k: info["spec"][k] for k in ("noise_fill", "max_loops", "folds", "headroom_db", "level")} == {
        "noise_fill": "concat", "max_loops": 2, "folds": 3, "headroom_db": 9.0, "level": "match-clean"}
    assert info["schema_version"] == 3


def test_both_commands_tell_their_version_and_run_as_modules():
    import subprocess
    import sys

    from noisemix import __version__

    for module in ("noisemix", "dat"):
        result = subprocess.run([sys.executable, "-m", module, "--version"], capture_output=True, text=True)
        assert result.returncode == 0 and result.stdout.strip() == f"{module} {__version__}", result.stderr


def test_a_build_from_untagged_music_says_it_cannot_train_a_tagger(synthetic_corpus, tmp_path):
    import shutil

    clean = tmp_path / "untagged"
    shutil.copytree(synthetic_corpus / "clean", clean)
    (clean / "tags.csv").unlink()
    text = cli("build", "--clean", clean, "--noise", f"speech={synthetic_corpus}/noise/speech", "--snr", "0:10",
               "--out", tmp_path / "m", "--no-progress")
    assert "note: no clean clip has tags" in text and "train: " in text
