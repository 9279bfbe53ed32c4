"""The committed demo benchmark (manifests/demo*) matches a freshly built demo corpus."""

from pathlib import Path

import pytest

from noisemix import schema as S
from noisemix.build import build_manifest
from noisemix.manifest import load_manifest
from noisemix.sources import CorpusInput
from noisemix.spec import BuildSpec
from noisemix.verify import verify_manifest

full = pytest.mark.demo_full  # needs the full demo corpus: `make test-demo`

MANIFESTS = Path(__file__).resolve().parents[1] / "manifests"
DEMO = ("demo", "demo-grid")


@full
@pytest.mark.parametrize("name", DEMO)
def test_committed_demo_manifests_verify_against_a_fresh_corpus(demo_corpus, name):
    corpus, _ = demo_corpus
    assert verify_manifest(MANIFESTS / name, roots={"demo": corpus}, progress=False) == []


@full
@pytest.mark.parametrize("name", DEMO)
def test_demo_benchmark_regenerates_bit_for_bit(demo_corpus, tmp_path, name):
    corpus, _ = demo_corpus
    committed = load_manifest(MANIFESTS / name, roots={"demo": corpus})
    inputs = [CorpusInput("demo", corpus, "clean", subdir="clean"), CorpusInput("demo", corpus, "noise", subdir="noise")]
    info = build_manifest(inputs, BuildSpec.from_dict(committed.info["spec"]), tmp_path / "again", workers=2,
                          progress=False, tags=committed.tags)
    assert info["fingerprints"] == committed.info["fingerprints"]


@full
def test_demo_benchmark_shape(demo_corpus):
    corpus, info = demo_corpus
    grid = load_manifest(MANIFESTS / "demo-grid", roots={"demo": corpus}).mixtures
    test = grid[grid[S.SPLIT] == "test"]
    cells = test.groupby([S.NOISE_CATEGORY, S.SNR_DB]).size()
    assert len(cells) == 3 * 6 and cells.nunique() == 1
    demo = load_manifest(MANIFESTS / "demo", roots={"demo": corpus}).mixtures
    assert set(demo[S.SPLIT]) == set(S.SPLITS)
    assert demo[S.CLEAN_SOURCE_ID].nunique() == info["clean"]["clips"]


# --- the committed benchmark is big enough to measure (no corpus needed) -------------

MIN_CELL_CLIPS = 60   # distinct test clips per category x SNR cell of the grid
MIN_TRAIN_CLIPS = 600
MIN_TAG_POSITIVES = 10  # clean test clips per tag


def _mixtures(name: str):
    import pandas as pd

    return pd.read_parquet(MANIFESTS / name / S.MIXTURES_FILE)


def test_every_grid_cell_holds_enough_distinct_test_clips():
    grid = _mixtures("demo-grid")
    test = grid[grid[S.SPLIT] == "test"]
    clips = test.groupby([S.NOISE_CATEGORY, S.SNR_DB])[S.CLEAN_SOURCE_ID].nunique()
    assert len(clips) == 3 * 6 and clips.min() >= MIN_CELL_CLIPS, clips.to_dict()


def test_training_split_is_several_hundred_clips_and_every_tag_is_scorable_in_test():
    demo = _mixtures("demo")
    clean = demo[demo[S.NOISE_CATEGORY] == ""]
    per_split = clean.groupby(S.SPLIT)[S.CLEAN_SOURCE_ID].nunique()
    assert per_split["train"] >= MIN_TRAIN_CLIPS, per_split.to_dict()
    test = clean[clean[S.SPLIT] == "test"].drop_duplicates(S.CLEAN_SOURCE_ID)
    positives = test[S.TAGS].explode().value_counts()
    vocabulary = set(clean[S.TAGS].explode())
    assert set(positives.index) == vocabulary and positives.min() >= MIN_TAG_POSITIVES, positives.to_dict()
