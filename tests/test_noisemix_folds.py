"""Grouped k-fold benchmarks (issue 22): `noisemix build --folds K` puts every clean group and
every noise group in one fold, mixes each clip only with noise of its fold, and `dat --fold J`
tests fold J, so a small corpus tests every clip once."""

import numpy as np
import pytest

from noisemix import select_fold
from noisemix import schema as S
from noisemix.build import build_manifest
from noisemix.manifest import load_manifest
from noisemix.sources import CorpusInput
from noisemix.spec import BuildSpec, parse_snr

FOLDS = 3


@pytest.fixture(scope="module")
def folded(small_demo_corpus, tmp_path_factory):
    corpus, _ = small_demo_corpus
    inputs = [CorpusInput("demo", corpus, "clean", subdir="clean"), CorpusInput("demo", corpus, "noise", subdir="noise")]
    out = tmp_path_factory.mktemp("folds") / "manifest"
    build_manifest(inputs, BuildSpec(seed=0, segment_frames=59049, max_segments_per_clip=1, snr=parse_snr("-5:20"),
                                     folds=FOLDS), out, progress=False)
    return load_manifest(out, roots={"demo": corpus})


def test_clips_and_noise_stay_in_one_fold_and_meet_only_their_own(folded):
    rows, sources = folded.mixtures, folded.sources
    assert folded.info["schema_version"] == 3 and folded.info["spec"]["folds"] == FOLDS
    assert set(rows[S.FOLD]) == set(range(FOLDS))
    clean_group = rows[S.CLEAN_SOURCE_ID].map(sources[S.GROUP])
    assert (rows.groupby(clean_group)[S.FOLD].nunique() == 1).all()  # a piece never straddles folds
    noisy = rows[rows[S.NOISE_CATEGORY] != ""]
    noise_group = noisy[S.NOISE_SOURCE_ID].map(sources[S.GROUP])
    assert (noisy.groupby(noise_group)[S.FOLD].nunique() == 1).all()  # nor does a noise group
    assert len(set(zip(noise_group, noisy[S.FOLD]))) == noise_group.nunique()


def test_fold_0_is_the_stored_split_and_select_fold_moves_it(folded):
    rows = folded.mixtures
    expected = {0: "test", 1: "valid", 2: "train"}
    assert (rows[S.SPLIT] == rows[S.FOLD].map(expected)).all()
    tested = set()
    for fold in range(FOLDS):
        moved = select_fold(folded, fold).mixtures
        assert set(moved.loc[moved[S.SPLIT] == "test", S.FOLD]) == {fold}
        assert set(moved.loc[moved[S.SPLIT] == "valid", S.FOLD]) == {(fold + 1) % FOLDS}
        tested |= set(moved.loc[moved[S.SPLIT] == "test", S.MIXTURE_ID])
    assert tested == set(rows[S.MIXTURE_ID])  # every clip is tested exactly once over the folds
    assert np.array_equal(select_fold(folded, 0).mixtures[S.SPLIT], rows[S.SPLIT])
    with pytest.raises(S.ManifestError, match="folds 0..2"):
        select_fold(folded, FOLDS)


def test_dat_refuses_a_fold_the_manifest_lacks_in_one_line(folded, built_manifest, tmp_path):
    from typer.testing import CliRunner

    from dat.cli import app

    result = CliRunner().invoke(app, ["train", "-m", str(folded.directory), "--out", str(tmp_path / "run"),
                                      "--preset", "tiny", "--fold", "5", "--root", f"demo={folded.roots['demo']}"])
    assert result.exit_code == 2 and "folds 0..2" in result.stderr and len(result.stderr.splitlines()) == 1
    plain = CliRunner().invoke(app, ["evaluate", str(tmp_path / "run"), "-m", str(built_manifest), "--fold", "0"])
    assert plain.exit_code == 2 and "built without folds" in plain.stderr
    shown = CliRunner().invoke(app, ["train", "-m", str(folded.directory), "--out", str(tmp_path / "r2"),
                                     "--preset", "tiny", "--fold", "2", "--print-config"])
    assert '"fold": 2' in shown.stdout
