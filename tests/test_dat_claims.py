"""Bootstrap statistics and claim verdicts (dat.bootstrap, dat.claims), and the experiment command."""

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from dat.bootstrap import cluster_weights, interval, macro_scores_weighted, weighted_average_precision, \
    weighted_roc_auc
from dat.claims import EvalPredictions, analyse, claims_markdown, verdict
from noisemix import schema as S


@pytest.mark.parametrize("trial", range(6))
def test_weighted_scores_equal_sklearn_with_sample_weights_and_ties(trial):
    rng = np.random.default_rng(trial)
    scores = np.round(rng.random(60), 1)  # many ties
    labels = (rng.random(60) < 0.35).astype(float)
    weights = rng.integers(0, 4, 60).astype(float)
    weights[np.flatnonzero(labels > 0)[0]] = weights[np.flatnonzero(labels == 0)[0]] = 1.0  # both classes weigh
    assert weighted_roc_auc(scores, labels, weights)[0] == pytest.approx(
        roc_auc_score(labels, scores, sample_weight=weights), abs=1e-12)
    assert weighted_average_precision(scores, labels, weights)[0] == pytest.approx(
        average_precision_score(labels, scores, sample_weight=weights), abs=1e-12)


def test_cluster_resamples_move_whole_clips_and_row0_is_the_data():
    clusters = np.array(["a", "a", "b", "c", "c", "c"])
    weights = cluster_weights(clusters, 200, np.random.default_rng(0))
    assert weights.shape == (201, 6) and (weights[0] == 1).all()
    assert (weights[:, 0] == weights[:, 1]).all() and (weights[:, 3] == weights[:, 5]).all()
    assert (weights[1:, [0, 2, 3]].sum(axis=1) == 3).all()  # three clusters drawn each time
    values = np.r_[0.5, np.linspace(0.0, 1.0, 1001)]
    assert interval(values) == pytest.approx((0.5, 0.025, 0.975))


def _test_set(n_clips=40, effect=0.0, seeds=3, seed=0):
    """Clips x (clean + noisy at two SNRs); arm 'good' ranks tags better than 'base' by ``effect``."""
    rng = np.random.default_rng(seed)
    rows, labels = [], []
    for clip in range(n_clips):
        tags = (rng.random(4) < 0.4).astype(float)
        tags[clip % 4] = 1.0
        for category, snr in (("", np.nan), ("speech", 0.0), ("speech", 10.0), ("music", 0.0)):
            rows.append({S.MIXTURE_ID: f"m{clip}-{category}-{snr}", S.CLEAN_SOURCE_ID: f"c{clip}",
                         S.NOISE_CATEGORY: category, S.SNR_DB: snr})
            labels.append(tags)
    labels = np.array(labels)
    noise = rng.normal(size=(seeds,) + labels.shape)
    base = labels * 0.5 + noise
    good = labels * (0.5 + effect) + noise
    return EvalPredictions(pd.DataFrame(rows), labels, list("wxyz"), list(range(seeds)),
                           {"source-only": base, "dat": good})


def test_a_clear_gain_is_supported_and_a_clear_loss_refuted():
    gain = analyse(_test_set(effect=1.5), None, resamples=200)
    noisy, clean = gain["claims"]["a"]["rows"]
    assert noisy["condition"] == "noisy" and noisy["verdict"] == "supported" and noisy["roc_auc"]["low"] > 0
    assert clean["kind"] == "non-inferiority" and clean["verdict"] == "supported"
    assert gain["claims"]["a"]["verdict"] == "supported"
    loss = analyse(_test_set(effect=-0.4), None, resamples=200)
    assert loss["claims"]["a"]["rows"][0]["verdict"] == "refuted" and loss["claims"]["a"]["verdict"] == "refuted"
    assert gain["claims"]["c"]["verdict"] == "not run"  # no dat-1cat arm


def test_no_difference_is_inconclusive_and_too_few_clips_get_no_number():
    same = analyse(_test_set(effect=0.0), None, resamples=200)
    row = same["claims"]["a"]["rows"][0]
    assert row["roc_auc"]["diff"] == 0.0 and row["verdict"] == "inconclusive"
    small = analyse(_test_set(n_clips=12, effect=1.5), None, resamples=50)
    assert small["claims"]["a"]["rows"][0]["verdict"] == "n/a (12 clips)"
    assert small["claims"]["a"]["verdict"] == "n/a (too few clips)"
    text = claims_markdown(small, "# header")
    assert "n/a (12 clips)" in text and "+" not in text.split("## Scores per arm")[1].split("|")[3]


def test_resamples_draw_whole_pieces_while_cells_count_clips():
    from dat.claims import Bootstrap
    from dat.evaluate import CLEAN_GROUP

    test = _test_set(n_clips=40)
    test.rows[CLEAN_GROUP] = test.rows[S.CLEAN_SOURCE_ID].str[1:].astype(int).floordiv(4).map("piece{}".format)
    assert len(set(test.clusters())) == 10  # four excerpts per piece
    boot = Bootstrap(test.clusters(), 1, 50, 0, test.rows[S.CLEAN_SOURCE_ID].to_numpy())
    assert boot.clips(np.ones(len(test.rows), bool)) == 40
    pieces = test.rows[CLEAN_GROUP].to_numpy()
    for weights in boot.weights[1:]:
        for piece in set(pieces):
            assert len(set(weights[pieces == piece])) == 1  # a piece is drawn whole or not at all
    assert analyse(test, None, resamples=50)["test_clips"] == 40


def test_fold_averaged_scores_keep_each_folds_calibration_apart():
    """Two folds; 'dat' ranks better than 'source-only' within each fold, but its fold-1 model
    scores everything 3 higher (another calibration): pooling ranks fold 1's negatives above
    fold 0's positives and hides the gain that averaging over folds shows."""
    from dat.claims import Bootstrap

    folds = [_test_set(n_clips=40, effect=1.0, seeds=2, seed=k) for k in (0, 1)]
    for k, part in enumerate(folds):
        part.rows[S.CLEAN_SOURCE_ID] = f"f{k}-" + part.rows[S.CLEAN_SOURCE_ID]
    folds[1].probs["dat"] = folds[1].probs["dat"] + 3.0
    test = EvalPredictions(pd.concat([f.rows for f in folds], ignore_index=True),
                           np.concatenate([f.labels for f in folds]), list("wxyz"), [0, 1],
                           {arm: np.concatenate([f.probs[arm] for f in folds], axis=1) for arm in ("dat", "source-only")},
                           np.repeat([0, 1], len(folds[0].rows)))
    averaged = analyse(test, None, resamples=200, fold_average=True)
    pooled = analyse(test, None, resamples=200)
    assert averaged["claims"]["a"]["rows"][0]["verdict"] == "supported"
    assert pooled["claims"]["a"]["rows"][0]["roc_auc"]["diff"] < averaged["claims"]["a"]["rows"][0]["roc_auc"]["diff"]
    assert "mean over folds" in averaged["folds"] and "pool" in pooled["folds"]
    boot = Bootstrap(test.clusters(), 2, 50, 0, folds=test.folds, fold_average=True)
    for weights in boot.weights[1:]:  # every resample keeps each fold's size
        assert weights[test.folds == 0].sum() == weights[test.folds == 1].sum() == 160
    small = np.r_[np.ones(4 * 40, bool), np.zeros(4 * 40, bool)] & (np.arange(320) % 4 == 0)
    assert boot.too_few(small) == "n/a (0 clips in a fold)"


def test_the_share_of_multiconditions_gain_is_paired_and_shown_only_where_that_gain_is_real():
    test = _test_set(effect=1.5)
    test.probs["multicondition"] = test.probs.pop("dat")
    test.probs["consistency"] = test.probs["multicondition"].copy()  # all of the gain
    shares = [r for r in analyse(test, None, resamples=100)["claims"]["beyond"]["detail"] if r["kind"] == "fraction"]
    assert [r["condition"] for r in shares][:1] == ["noisy"] and len(shares) == 1 + 2 + 2  # 2 SNRs, 2 categories
    assert shares[0]["roc_auc"] == pytest.approx({"diff": 1.0, "low": 1.0, "high": 1.0})
    test.probs["consistency"] = test.probs["source-only"] + 0.0  # none of it
    none = analyse(test, None, resamples=100)["claims"]["beyond"]["detail"]
    assert next(r for r in none if r["kind"] == "fraction")["roc_auc"]["diff"] == 0.0
    test.probs["multicondition"] = test.probs["source-only"]  # nothing to share
    row = next(r for r in analyse(test, None, resamples=100)["claims"]["beyond"]["detail"] if r["kind"] == "fraction")
    assert row["verdict"] == "n/a (multicondition's gain is not above 0 here)" and "roc_auc" not in row
    text = claims_markdown(analyse(_with_half_gain(), None, resamples=100), "# h")
    assert "share of multicondition's gain over source-only reached by consistency | noisy" in text


def _with_half_gain():
    test = _test_set(effect=1.5)
    test.probs["multicondition"] = test.probs.pop("dat")
    test.probs["consistency"] = (test.probs["multicondition"] + test.probs["source-only"]) / 2
    return test


def test_verdict_rules():
    assert verdict(0.1, 0.3, "superiority") == "supported"
    assert verdict(-0.3, -0.1, "superiority") == "refuted"
    assert verdict(-0.1, 0.3, "superiority") == "inconclusive"
    assert verdict(-0.005, 0.02, "non-inferiority", 0.01) == "supported"
    assert verdict(-0.05, -0.02, "non-inferiority", 0.01) == "refuted"
    assert verdict(-0.02, 0.01, "non-inferiority", 0.01) == "inconclusive"


def test_macro_scores_skip_tags_without_both_classes():
    labels = np.array([[1, 0], [0, 0], [1, 0], [0, 0]], dtype=float)
    probs = np.array([[0.9, 0.1], [0.2, 0.3], [0.8, 0.5], [0.1, 0.2]])
    out = macro_scores_weighted(probs, labels, np.ones((1, 4)))
    assert out["roc_auc"][0] == 1.0 and out["pr_auc"][0] == 1.0


RECIPE = """
name = "tiny-claims"
seeds = [0]
preset = "tiny"
jobs = 2
test = "grid"
corpus = "synthetic"
bootstrap_resamples = 20
early_validations = 1
[config]
train = {stage3 = {steps = 6}}
[manifests.train]
build = ["--snr", "-5:20", "--segment", "8748", "--seed", "0"]
[manifests.grid]
build = ["--design", "grid", "--snr", "0,10", "--segment", "8748", "--seed", "0"]
[arms.source-only]
method = "source-only"
manifest = "train"
[arms.dat]
method = "dat"
manifest = "train"
[arms.dat-lambda0]
method = "dat"
manifest = "train"
config = {train = {lambda_max = 0.0}}
"""


FOLDED_RECIPE = """
name = "tiny-folds"
seeds = [0]
preset = "tiny"
jobs = 2
test = "grid"
corpus = "synthetic"
bootstrap_resamples = 20
early_validations = 1
[config]
train = {stage3 = {steps = 4}}
[manifests.train]
build = ["--snr", "-5:20", "--segment", "8748", "--seed", "0", "--folds", "3"]
[manifests.grid]
build = ["--design", "grid", "--snr", "0,10", "--segment", "8748", "--seed", "0", "--folds", "3"]
[arms.source-only]
method = "source-only"
manifest = "train"
[arms.dat]
method = "dat"
manifest = "train"
"""


def test_experiment_on_a_folded_benchmark_trains_every_fold_and_reports_both_ways(tmp_path):
    from typer.testing import CliRunner

    from dat.cli import app

    (tmp_path / "recipe.toml").write_text(FOLDED_RECIPE)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["experiment", str(tmp_path / "recipe.toml"), "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.stderr
    tested = []
    for fold in range(3):
        run = out / "runs" / "seed0" / f"fold{fold}" / "dat"
        assert json.loads((run / "config.json").read_text())["data"]["fold"] == fold
        tested.append(set(pd.read_parquet(run / "eval-test" / "predictions.parquet")["mixture_id"]))
    assert not (tested[0] & tested[1]) and not (tested[1] & tested[2])  # each fold's model on its own test fold
    averaged, pooled = (json.loads((out / f"{name}.json").read_text()) for name in ("claims", "claims-pooled"))
    assert "3 folds" in averaged["folds"] and "mean over folds" in averaged["folds"]
    assert "pool" in pooled["folds"] and pooled["test_mixtures"] == averaged["test_mixtures"] == sum(map(len, tested))
    assert (out / "claims-last-pooled.md").is_file() and "dat (1 seeds x 3 folds)" in (out / "claims.md").read_text()
    bad = tmp_path / "bad.toml"
    bad.write_text(FOLDED_RECIPE.replace('"0", "--folds", "3"]\n[arms', '"0"]\n[arms'))
    refused = CliRunner().invoke(app, ["experiment", str(bad), "--out", str(tmp_path / "o2")])
    assert refused.exit_code == 2 and "same --folds K" in refused.stderr


def test_experiment_runs_resumes_and_reports(tmp_path):
    from typer.testing import CliRunner

    from dat.cli import app

    (tmp_path / "recipe.toml").write_text(RECIPE)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["experiment", str(tmp_path / "recipe.toml"), "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.stderr
    claims = json.loads((out / "claims.json").read_text())
    assert claims["seeds"] == [0] and set(claims["absolute"]) == {"source-only", "dat", "dat-lambda0"}
    control = json.loads((out / "runs" / "seed0" / "dat-lambda0" / "config.json").read_text())
    assert control["train"]["lambda_max"] == 0.0 and control["train"]["stage3"]["steps"] == 6  # arm over recipe
    assert "dat-lambda0: train.lambda_max=0.0" in (out / "claims.md").read_text()
    assert "the selection rule kept stage 1's model in" in (out / "claims.md").read_text()
    last = json.loads((out / "claims-last.json").read_text())  # every run at the end of its training too
    assert set(last["absolute"]) == set(claims["absolute"]) and "last.pt" in (out / "claims-last.md").read_text()
    metrics = json.loads((out / "runs" / "seed0" / "dat" / "eval-test-last" / "metrics.json").read_text())
    assert metrics["checkpoint"] == "last" and metrics["selected_at"]["stage"] == 3
    assert claims["claims"]["a"]["rows"][0]["verdict"].startswith("n/a (")  # the synthetic test split is tiny
    for name in ("claims.md", "dc_accuracy.png", "timings.csv"):
        assert (out / name).is_file(), name
    # Every test cell is n/a: no empty plot is written, and the run says so in one line.
    assert not (out / "auc_vs_snr.png").exists() and "nothing to draw" in result.stderr and "auc_vs_snr.png" in result.stderr
    stage1 = pd.read_csv(out / "runs" / "seed0" / "stage1" / "valid.csv")
    shared = pd.read_csv(out / "runs" / "seed0" / "dat" / "valid.csv")
    assert shared[shared["stage"] == 1].equals(stage1)  # both arms continue the one stage 1
    before = (out / "timings.csv").read_text()
    again = CliRunner().invoke(app, ["experiment", str(tmp_path / "recipe.toml"), "--out", str(out), "--no-progress"])
    assert again.exit_code == 0 and (out / "timings.csv").read_text() == before  # nothing re-run
    bad = CliRunner().invoke(app, ["experiment", str(tmp_path / "recipe.toml").replace("recipe", "none"),
                                   "--out", str(out)])
    assert bad.exit_code == 2 and bad.stderr.startswith("error: ") and len(bad.stderr.splitlines()) == 1


def test_committed_experiment_recipe_loads_and_points_at_committed_manifests():
    from pathlib import Path

    from dat.experiment import load_recipe

    folder = Path(__file__).resolve().parents[1] / "experiments"
    recipe = load_recipe(folder / "demo-claims.toml")
    assert {"source-only", "multicondition", "dat-no-dc-pretrain", "dat", "dat-lambda0"} <= set(recipe.arms)
    tries = load_recipe(folder / "demo-dat-tries.toml")
    assert tries.seeds == recipe.seeds and tries.preset == recipe.preset
    for name in ("source-only", "dat"):  # the tries' baselines are the claims' runs, configured alike
        assert tries.arms[name] == recipe.arms[name]
    assert len(recipe.seeds) >= 3
    for loaded in (recipe, tries):
        for name in loaded.manifests:
            reference = loaded.manifest_reference(name)
            assert reference is None or (reference / "manifest.json").is_file(), reference
            assert loaded.manifests[name]["build"] == recipe.manifests[name]["build"]
