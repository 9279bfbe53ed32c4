"""Recipes: the committed benchmarks build byte-for-byte stably; bad recipes fail in one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from noisemix import schema as S
from noisemix.errors import SpecError
from noisemix.recipe import load_recipe
from test_adapters import make_esc50, make_musan, make_mtat

REPO = Path(__file__).resolve().parents[1]
RECIPES = REPO / "manifests" / "recipes"
FILES = (S.SOURCES_FILE, S.MIXTURES_FILE, S.INFO_FILE, "README.md")


def cli(*args, code: int = 0) -> subprocess.CompletedProcess:
    run = subprocess.run([sys.executable, "-c", "import noisemix.cli as c; c.main()", *map(str, args)],
                         capture_output=True, text=True, cwd=REPO)
    assert run.returncode == code, run.stderr
    return run


@pytest.fixture(scope="module")
def public(tmp_path_factory):
    base = tmp_path_factory.mktemp("public")
    make_mtat(base / "mtat")
    make_musan(base / "musan")
    make_esc50(base / "ESC-50-master")
    return base


def _build(public: Path, recipe: str, noise: str, out: Path, workers: int) -> None:
    folder = {"musan": public / "musan", "esc50": public / "ESC-50-master"}[noise]
    cli("build", "--recipe", RECIPES / recipe, "--root", f"mtat={public / 'mtat'}", "--root", f"{noise}={folder}",
        "--corpus-option", "mtat.allow_partial=true", "--out", out, "--workers", workers, "--no-progress")


def test_mtat_musan_recipe_is_byte_stable_across_runs_and_workers(public, tmp_path):
    for name, workers in (("a", 1), ("b", 1), ("c", 2)):
        _build(public, "mtat-musan.toml", "musan", tmp_path / name, workers)
    for file in FILES:
        data = (tmp_path / "a" / file).read_bytes()
        assert data == (tmp_path / "b" / file).read_bytes() == (tmp_path / "c" / file).read_bytes(), file
    mixtures = pd.read_parquet(tmp_path / "a" / S.MIXTURES_FILE)
    noisy = mixtures[mixtures[S.NOISE_SOURCE_ID] != ""]
    test = noisy[noisy[S.SPLIT] == "test"]
    # test: every segment x category x level; train/valid: one random draw per segment.
    assert test.groupby([S.CLEAN_SOURCE_ID, S.NOISE_CATEGORY]).size().eq(6).all()
    assert sorted(test[S.SNR_DB].unique()) == [-5, 0, 5, 10, 15, 20]
    assert set(test[S.NOISE_CATEGORY]) == set(S.CATEGORIES)
    train = noisy[noisy[S.SPLIT] == "train"]
    assert train.groupby(S.CLEAN_SOURCE_ID).size().eq(1).all()
    assert train[S.SNR_DB].between(-5, 20).all() and train[S.SNR_DB].nunique() == len(train)
    info = json.loads((tmp_path / "a" / S.INFO_FILE).read_text())
    assert info["tags"][:3] == ["guitar", "classical", "slow"] and len(info["tags"]) == 50
    assert info["spec"]["splits"]["test"] == {"design": "grid", "snr": "-5,0,5,10,15,20"}
    assert info["recipe"]["name"] == "mtat-musan" and info["recipe"]["corpus_options"] == {"mtat": {"allow_partial": "true"}}
    card = (tmp_path / "a" / "README.md").read_text()
    assert info["fingerprints"]["mixtures"] in card and "Built from a partial copy" in card
    assert "noisemix build --recipe manifests/recipes/mtat-musan.toml --root mtat=" in card
    # The same rows come out of a manifest built with the shared split of the clean clips.
    sources = pd.read_parquet(tmp_path / "a" / S.SOURCES_FILE)
    clips = pd.read_csv(REPO / "manifests" / "mtat-pons2017" / "clips.csv").set_index("path")
    clean = sources[sources[S.ROLE] == "clean"]
    assert (clean[S.SPLIT].to_numpy() == clips.loc[clean[S.PATH], "split"].to_numpy()).all()
    assert "matches its sources" in cli("verify", tmp_path / "a", "--no-progress").stdout


def test_mtat_esc50_recipe_uses_folds_as_noise_splits(public, tmp_path):
    _build(public, "mtat-esc50.toml", "esc50", tmp_path / "m", 1)
    sources = pd.read_parquet(tmp_path / "m" / S.SOURCES_FILE)
    mixtures = pd.read_parquet(tmp_path / "m" / S.MIXTURES_FILE)
    noise = sources[sources[S.ROLE] == "noise"].set_index(S.SOURCE_ID)
    used = mixtures[mixtures[S.NOISE_SOURCE_ID] != ""]
    folds = noise.loc[used[S.NOISE_SOURCE_ID], S.PATH].str.slice(6, 7).astype(int).to_numpy()
    expected = used[S.SPLIT].map({"train": {1, 2, 3}, "valid": {4}, "test": {5}}).to_numpy()
    assert all(f in e for f, e in zip(folds, expected))
    assert set(used[S.NOISE_SUBCATEGORY]) <= {"dog", "rain"} and set(used[S.NOISE_CATEGORY]) == {"environmental"}


def test_committed_recipes_load():
    for path in sorted(RECIPES.glob("*.toml")):
        recipe = load_recipe(path)
        assert recipe.spec.for_split("test").design == "grid"
        assert recipe.spec.for_split("train").snr.text() == "-5:20"
        assert recipe.spec.segment_frames == 59049 and recipe.spec.sample_rate == 22050 and recipe.spec.seed == 0


@pytest.mark.parametrize("text, message", [
    ('schema_version = 1\nseed = 0\ncolour = "red"\n', "unknown key(s) colour; allowed:"),
    ('schema_version = 2\n', "schema_version 2 is not supported"),
    ('seed = 0\n', "add schema_version = 1"),
    ('schema_version = 1\n[corpora.m]\nadapter = "mtat"\n[corpora.n]\nadapter = "musan"\n[splits.test]\ndesign = "grid"\nsnr = "-5:20"\n',
     "splits.test.snr: must be a list of levels"),
    ('schema_version = 1\n[corpora.m]\nadapter = "mtat"\nsplitt = "x"\n[corpora.n]\nadapter = "musan"\n', "unknown option(s) splitt"),
    ('schema_version = 1\n[corpora.m]\nadapter = "freesound"\n', "unknown corpus adapter 'freesound'"),
    ('schema_version = 1\n[corpora.m]\nadapter = "mtat"\n[corpora.n]\nadapter = "musan"\n[splits.train]\nsnr = "-5:20"\nseed = 3\n',
     "[splits.train]: unknown key(s) seed"),
    ('schema_version = 1\n[corpora.m]\nadapter = "mtat"\n', "needs at least one clean and one noise corpus"),
    ('schema_version = 1\nseed = \n', "not valid TOML"),
])
def test_bad_recipes_are_refused_with_one_line(tmp_path, text, message):
    path = tmp_path / "r.toml"
    path.write_text(text)
    with pytest.raises(SpecError) as error:
        load_recipe(path)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_recipe_cli_errors(public, tmp_path):
    recipe = RECIPES / "mtat-musan.toml"
    for args, message in (
        (["--root", f"mtat={public / 'mtat'}"], "--root musan=PATH (ROOT/{music,noise,speech}"),
        (["--root", f"mtat={public / 'mtat'}", "--root", f"musan={public / 'musan'}", "--snr", "0:5"],
         "--snr cannot be combined with --recipe"),
        (["--root", f"mtat={public / 'mtat'}", "--root", f"musan={public / 'musan'}", "--root", f"x={tmp_path}"],
         "--root x is not one of its corpora"),
        (["--root", f"mtat={public / 'musan'}", "--root", f"musan={public / 'musan'}"], "annotations_final.csv: not found"),
    ):
        run = cli("build", "--recipe", recipe, *args, "--out", tmp_path / "m", "--no-progress", code=2)
        assert message in run.stderr and len(run.stderr.strip().splitlines()) == 1, run.stderr


def test_committed_manifests_validate():
    from noisemix.card import card_text
    from noisemix.manifest import load_manifest

    for info in sorted((REPO / "manifests").glob(f"*/{S.INFO_FILE}")):
        manifest = load_manifest(info.parent)       # schema, paths and source ids checked
        assert manifest.info["fingerprints"]["mixtures"] in card_text(manifest)
