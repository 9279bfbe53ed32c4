"""The committed demo benchmark (manifests/demo*) matches a freshly built demo corpus."""

from pathlib import Path

import pytest

from noisemix import schema as S
from noisemix.build import build_manifest
from noisemix.manifest import load_manifest
from noisemix.sources import CorpusInput
from noisemix.spec import BuildSpec
from noisemix.verify import verify_manifest

pytestmark = pytest.mark.demo_full  # needs the full demo corpus: `make test-demo`

MANIFESTS = Path(__file__).resolve().parents[1] / "manifests"
DEMO = ("demo", "demo-grid")


@pytest.mark.parametrize("name", DEMO)
def test_committed_demo_manifests_verify_against_a_fresh_corpus(demo_corpus, name):
    corpus, _ = demo_corpus
    assert verify_manifest(MANIFESTS / name, roots={"demo": corpus}, progress=False) == []


def test_demo_benchmark_regenerates_bit_for_bit(demo_corpus, tmp_path):
    corpus, _ = demo_corpus
    committed = load_manifest(MANIFESTS / "demo", roots={"demo": corpus})
    inputs = [CorpusInput("demo", corpus, "clean", subdir="clean"), CorpusInput("demo", corpus, "noise", subdir="noise")]
    info = build_manifest(inputs, BuildSpec.from_dict(committed.info["spec"]), tmp_path / "again", workers=2,
                          progress=False)
    assert info["fingerprints"] == committed.info["fingerprints"]


def test_demo_benchmark_shape(demo_corpus):
    corpus, info = demo_corpus
    grid = load_manifest(MANIFESTS / "demo-grid", roots={"demo": corpus}).mixtures
    test = grid[grid[S.SPLIT] == "test"]
    cells = test.groupby([S.NOISE_CATEGORY, S.SNR_DB]).size()
    assert len(cells) == 3 * 6 and cells.nunique() == 1
    demo = load_manifest(MANIFESTS / "demo", roots={"demo": corpus}).mixtures
    assert set(demo[S.SPLIT]) == set(S.SPLITS)
    assert demo[S.CLEAN_SOURCE_ID].nunique() == info["clean"]["clips"]
