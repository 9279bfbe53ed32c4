"""End-to-end training of the four methods, evaluation outputs, resume, and bad inputs."""

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import torch
from typer.testing import CliRunner

from dat import checkpoint
from dat.cli import app
from dat.config import METHODS, config_from_dict
from dat.errors import DatError
from dat.train import train
from noisemix import load_manifest
from noisemix import schema as S
from noisemix.cache import decoded_dir
from noisemix.manifest import write_manifest
from noisemix.testing import write_synthetic_manifest


@pytest.fixture(scope="module")
def manifest_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    return write_synthetic_manifest(root / "m", root / "audio", clips={"train": 16, "valid": 6, "test": 6})


@pytest.fixture(scope="module")
def trained(manifest_dir, tmp_path_factory):
    """One run per method on the tiny configuration, with the same seed and budget."""
    runs = {}
    manifest = load_manifest(manifest_dir)
    for method in METHODS:
        run = tmp_path_factory.mktemp(method)
        config = config_from_dict({"preset": "tiny", "method": method})
        runs[method] = (run, train(config, manifest, run))
    return runs


def _cli(*args):
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def test_all_methods_train_with_their_stages_and_same_budget(trained, manifest_dir):
    budget = 12 + 8  # tiny preset: stage 1 + stage 3 steps of FE + LP updates
    expect = {"source-only": ([1, 3], budget), "multicondition": ([1, 3], budget),
              "dat-no-dc-pretrain": ([1, 3], budget), "dat": ([1, 2, 3], budget + 4),
              "consistency": ([1, 3], budget)}
    for method, (run, result) in trained.items():
        stages, steps = expect[method]
        assert result["completed"] == stages and result["global_step"] == steps, method
        assert not (run / "cache").exists()  # decoded audio goes to noisemix's shared cache, once for all runs
        log = pd.read_csv(run / "log.csv")
        assert sorted(log["stage"].unique()) == stages
        assert log["loss"].notna().all() and np.isfinite(log["loss"]).all()
        best = checkpoint.load(run / "best.pt", kind="model")
        assert best["tags"] == ["low", "high", "pulse"] and best["method"] == method
        saved = json.loads((run / "config.json").read_text())
        assert saved["method"] == method and saved["seed"] == 0
        assert json.loads((run / "run.json").read_text())["versions"]["torch"] == torch.__version__
    manifest = load_manifest(manifest_dir)
    training = manifest.mixtures[manifest.mixtures[S.SPLIT] != "test"]
    used = (set(training[S.CLEAN_SOURCE_ID]) | set(training[S.NOISE_SOURCE_ID])) - {""}
    for sha in manifest.sources.loc[sorted(used), S.SHA256]:
        assert any((decoded_dir() / sha[:2]).glob(f"{sha}-*.npy")), sha
    dat_log = pd.read_csv(trained["dat"][0] / "log.csv")
    stage3 = dat_log[dat_log["stage"] == 3]
    assert stage3["lambda"].is_monotonic_increasing and stage3["lambda"].iloc[0] >= 0
    for stage in (2, 3):
        rows = dat_log[dat_log["stage"] == stage]
        assert rows["dc_acc_source"].between(0, 1).all() and rows["dc_acc_target"].between(0, 1).all()
    selection = json.loads((trained["dat"][0] / "selection.json").read_text())
    assert selection["metric"] == "valid clean macro PR-AUC" and selection["chosen"]["stage"] in (1, 3)
    assert "noisy_valid_would_choose" in selection and "never" in selection["noisy_valid_note"]
    assert (trained["dat"][0] / "training.png").read_bytes()[:4] == b"\x89PNG"  # λ, losses and DC accuracy
    first = dat_log[dat_log["stage"] == 1]["loss"]
    assert first.tail(4).mean() < first.head(4).mean()  # stage 1 learns the audible tags


def test_evaluate_writes_reports_and_compare_puts_methods_side_by_side(trained, manifest_dir, tmp_path):
    runs = [trained[m][0] for m in METHODS]
    code, out, err = _cli("evaluate", *runs, "--manifest", manifest_dir, "--out", tmp_path / "cmp", "--workers", "0")
    assert code == 0, err
    for run in runs:
        metrics = json.loads((run / "eval" / "metrics.json").read_text())
        assert set(metrics["by_snr"]) == {"0.0", "10.0"}
        assert set(metrics["by_category"]) == set(S.CATEGORIES)
        assert metrics["clean"]["clips"] == 6 and metrics["noisy"]["clips"] == 36
        assert metrics["clean"]["too_few_clips"] and metrics["clean"]["roc_auc"] is None  # 6 < 30 clips
        assert metrics["noisy"]["roc_auc"] > 0.5
        assert "n/a (6 clips)" in (run / "eval" / "table.md").read_text()
        predictions = pd.read_parquet(run / "eval" / "predictions.parquet")
        assert len(predictions) == 42 and {"y:low", "p:low", "snr_db", "noise_category", "mixture_id",
                                           "clean_source_id", "clean_group", "split"} <= set(predictions.columns)
        assert set(predictions["split"]) == {"test"} and predictions["clean_group"].ne("").all()
        assert predictions.groupby("clean_source_id")["clean_group"].nunique().eq(1).all()
        per_tag = pd.read_csv(run / "eval" / "per_tag.csv")
        assert list(per_tag["tag"]) == ["low", "high", "pulse"]
        assert (run / "eval" / "table.md").read_text().startswith("| condition |")
        assert (run / "eval" / "auc_vs_snr.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "cmp" / "auc_vs_snr.png").is_file()
    code, out, err = _cli("compare", *runs)
    assert code == 0, err
    header = out.splitlines()[0]
    assert all(f"{m} (seed 0)" in header for m in METHODS)
    assert "speech @ 0.0 dB" in out


def test_resuming_a_pretrained_run_does_not_train_stage_1(manifest_dir, tmp_path):
    from test_dat_models import _clmr_style_state

    from dat.models import SampleCNN

    values = {"preset": "tiny", "method": "dat", "data": {"num_workers": 0},
              "train": {"stage2": {"steps": 2}, "stage3": {"steps": 4}, "checkpoint_every": 2, "eval_every": 2}}
    config = config_from_dict(values)
    torch.save(_clmr_style_state(SampleCNN(config.model), "encoder."), tmp_path / "clmr.pt")
    manifest = load_manifest(manifest_dir)

    class Killed(Exception):
        pass

    def kill(trainer):
        if trainer.progress.global_step == 5:  # in stage 3; the last checkpoint is at step 4
            raise Killed

    with pytest.raises(Killed):
        train(config, manifest, tmp_path / "run", pretrained=tmp_path / "clmr.pt", on_step=kill)
    result = train(config, manifest, tmp_path / "run", resume=True)  # as the README says: no --pretrained
    assert result["completed"] == [2, 3]
    assert set(pd.read_csv(tmp_path / "run" / "log.csv")["stage"]) == {2, 3}


def test_evaluate_name_keeps_each_manifests_reports_and_cache_dir_is_used(trained, manifest_dir, tmp_path):
    run = trained["dat"][0]
    cache = tmp_path / "shared-cache"
    code, out, err = _cli("evaluate", run, "-m", manifest_dir, "--name", "eval-second", "--cache-dir", cache,
                          "--workers", "0")
    assert code == 0, err
    assert json.loads((run / "eval-second" / "metrics.json").read_text())["clean"]["clips"] == 6
    assert any(cache.rglob("*.npy"))  # decoded audio went to the given cache
    _one_line_error(*_cli("evaluate", run, "-m", manifest_dir, "--name", "../elsewhere"), "plain folder name")


def test_predictions_cache_scores_one_model_once_and_reuses_it_exactly(trained, manifest_dir, tmp_path):
    run, other = trained["dat"][0], trained["source-only"][0]
    store = tmp_path / "predictions"
    first = _cli("evaluate", run, "-m", manifest_dir, "--name", "eval-a", "--predictions-cache", store, "--workers", "0")
    assert first[0] == 0, first[2]
    assert len(list(store.glob("*.npy"))) == 1 and "reused" not in first[2]
    again = _cli("evaluate", run, "-m", manifest_dir, "--name", "eval-b", "--predictions-cache", store, "--workers", "0")
    assert again[0] == 0 and "reused" in again[2]
    a, b = (pd.read_parquet(run / name / "predictions.parquet") for name in ("eval-a", "eval-b"))
    pd.testing.assert_frame_equal(a, b)
    assert (json.loads((run / "eval-a" / "metrics.json").read_text())
            == json.loads((run / "eval-b" / "metrics.json").read_text()))
    third = _cli("evaluate", other, "-m", manifest_dir, "--name", "eval-a", "--predictions-cache", store,
                 "--workers", "0", "--checkpoint", "last")
    assert third[0] == 0 and "reused" not in third[2]  # other weights (stage 3's end): scored, not reused
    assert len(list(store.glob("*.npy"))) == 2


def test_tag_prints_top_tags_and_pads_short_audio(trained, tmp_path):
    import soundfile as sf

    t = np.arange(800) / 16000
    stereo = np.stack([np.sin(2 * np.pi * 220 * t), np.sin(2 * np.pi * 220 * t)], 1) * 0.3
    sf.write(tmp_path / "short.wav", stereo, 16000)
    code, out, err = _cli("tag", trained["dat"][0], tmp_path / "short.wav", "--top", "2")
    assert code == 0, err
    assert len(out.splitlines()) == 2 and out.split()[0] in ("low", "high", "pulse")
    assert "shorter than one model input" in err and "zero-padded" in err


def test_resume_after_kill_gives_identical_weights(manifest_dir, tmp_path):
    manifest = load_manifest(manifest_dir)
    values = {"preset": "tiny", "method": "dat", "data": {"num_workers": 1},
              "train": {"deterministic": True, "stage1": {"steps": 4}, "stage2": {"steps": 2},
                        "stage3": {"steps": 4}, "checkpoint_every": 2, "eval_every": 2}}
    train(config_from_dict(values), manifest, tmp_path / "straight")

    class Killed(Exception):
        pass

    def kill(trainer):
        if trainer.progress.global_step == 9:  # stage 3 step 3; the last checkpoint is at step 8
            raise Killed

    with pytest.raises(Killed):
        train(config_from_dict(values), manifest, tmp_path / "resumed", on_step=kill)
    assert checkpoint.load(tmp_path / "resumed" / "last.pt")["progress"]["global_step"] == 8
    train(config_from_dict(values), manifest, tmp_path / "resumed", resume=True)
    a = checkpoint.load(tmp_path / "straight" / "last.pt")
    b = checkpoint.load(tmp_path / "resumed" / "last.pt")
    for part in ("fe", "lp", "dc"):
        for key in a[part]:
            assert torch.equal(a[part][key], b[part][key]), (part, key)
    assert a["streams"] == b["streams"] and a["progress"] == b["progress"]
    log = pd.read_csv(tmp_path / "resumed" / "log.csv")
    assert list(log["global_step"]) == list(range(1, 11))  # no duplicated or missing rows
    info = json.loads((tmp_path / "resumed" / "run.json").read_text())
    straight = json.loads((tmp_path / "straight" / "run.json").read_text())
    assert info["argv"] == straight["argv"] and "resumes" not in straight  # how the run started is kept
    assert [r["global_step"] for r in info["resumes"]] == [8]


def _rewrite(manifest_dir, out_dir, edit_mixtures=None, tags=None):
    manifest = load_manifest(manifest_dir)
    mixtures = manifest.mixtures.copy()
    if edit_mixtures:
        mixtures = edit_mixtures(mixtures)
    info = dict(manifest.info)
    if tags is not None:
        info["tags"] = tags
    # from_pylist keeps NaN (clean rows' SNR) as a value; from_pandas would make it null.
    write_manifest(out_dir, pa.Table.from_pylist(manifest.sources.to_dict("records"), schema=S.SOURCES_SCHEMA),
                   pa.Table.from_pylist(mixtures.to_dict("records"), schema=S.MIXTURES_SCHEMA), info)
    return out_dir


def _one_line_error(code, out, err, *needles, after_progress=False):
    """Exit 2 and one ``error:`` line; with ``after_progress`` (an error met while training)
    the progress shown before it stays, and the error is the last line."""
    assert code == 2 and "Traceback" not in err
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.strip()]
    assert lines and lines[-1].startswith("error: ") and (after_progress or len(lines) == 1), err
    assert sum(line.startswith("error: ") for line in lines) == 1, err
    for needle in needles:
        assert needle in lines[-1], lines[-1]


def test_nan_loss_stops_with_step_and_mixture_ids(manifest_dir, tmp_path):
    def poison(mixtures):  # a finite gain (a valid row) whose float32 samples overflow to inf
        mixtures[S.CLEAN_GAIN] = np.where(mixtures[S.SPLIT] == "train", 1e300, mixtures[S.CLEAN_GAIN])
        return mixtures

    bad = _rewrite(manifest_dir, tmp_path / "nan", poison)
    code, out, err = _cli("train", "-m", bad, "-o", tmp_path / "run", "--preset", "tiny")
    _one_line_error(code, out, err, "loss is NaN/inf at stage 1 step 1", "batch mixtures: ", after_progress=True)
    assert "stage 1 (FE + LP)" in err  # the tiny preset shows its bars too
    named = err.split("batch mixtures: ")[1].strip().split(", ")
    train_ids = set(load_manifest(bad).split_rows("train")[S.MIXTURE_ID])
    assert named and set(named) <= train_ids  # the ids of the batch's (poisoned) training rows


def test_bad_inputs_give_one_line_errors(trained, manifest_dir, tmp_path):
    run = trained["dat"][0]
    other_tags = _rewrite(manifest_dir, tmp_path / "tags", tags=["high", "low", "pulse"])
    _one_line_error(*_cli("evaluate", run, "-m", other_tags), "tag vocabulary", "same tags in another order")
    no_test = _rewrite(manifest_dir, tmp_path / "notest", lambda m: m[m[S.SPLIT] != "test"])
    _one_line_error(*_cli("evaluate", run, "-m", no_test), "split 'test' has no rows")
    unlabelled = _rewrite(manifest_dir, tmp_path / "unl", lambda m: m.assign(**{S.TAGS: [[]] * len(m)}))
    _one_line_error(*_cli("train", "-m", unlabelled, "-o", tmp_path / "r1", "--preset", "tiny"),
                    "carry no tags (labels are needed here)")
    _one_line_error(*_cli("train", "-m", manifest_dir, "-o", run, "--preset", "tiny"), "already holds a run")
    _one_line_error(*_cli("train", "-m", manifest_dir, "-o", run, "--resume", "--set", "model.dc_hidden=64"),
                    "--resume continues the run")
    _one_line_error(*_cli("train", "-m", manifest_dir, "-o", tmp_path / "r2", "--preset", "tiny", "--set",
                          "train.stage1.stepz=3"), "unknown field(s) stepz")
    _one_line_error(*_cli("train", "-m", manifest_dir, "-o", tmp_path / "r3", "--preset", "tiny",
                          "--method", "source-only", "--stage", "2"), "has no stage 2")
    _one_line_error(*_cli("train", "-m", manifest_dir, "-o", tmp_path / "r4", "--preset", "tiny", "--stage", "3"),
                    "stage 3 needs a trained FE")
    # A checkpoint from another architecture: resume a run with a changed model config.
    config = json.loads((run / "config.json").read_text())
    config["model"]["dc_hidden"] = 64
    (tmp_path / "r5").mkdir()
    (tmp_path / "r5" / "config.json").write_text(json.dumps(config))
    (tmp_path / "r5" / "last.pt").write_bytes((run / "last.pt").read_bytes())
    _one_line_error(*_cli("train", "-m", manifest_dir, "-o", tmp_path / "r5", "--resume"),
                    "checkpoint from another architecture", "dc_hidden")
    _one_line_error(*_cli("evaluate", tmp_path / "nothing", "-m", manifest_dir), "checkpoint not found")
    (tmp_path / "fake").mkdir()
    torch.save({"fe": {}}, tmp_path / "fake" / "best.pt")
    _one_line_error(*_cli("tag", tmp_path / "fake", tmp_path / "x.wav"), "not a dat checkpoint")


def test_tag_order_mismatch_is_refused_by_checkpoint_helper():
    with pytest.raises(DatError, match="manifest adds"):
        checkpoint.check_tags(["a", "b"], ["a", "b", "c"], "best.pt")
    checkpoint.check_tags(["a", "b"], ["a", "b"], "best.pt")


def test_a_stage_stops_at_the_first_evaluation_without_gain_when_patience_is_one(manifest_dir, tmp_path):
    config = config_from_dict({"preset": "tiny", "method": "source-only",
                               "train": {"patience": 1, "eval_every": 1, "checkpoint_every": 100}})
    result = train(config, load_manifest(manifest_dir), tmp_path / "run")
    evaluations = pd.read_csv(tmp_path / "run" / "valid.csv")
    for stage in (1, 3):
        scores = list(evaluations[evaluations["stage"] == stage]["clean_pr_auc"])
        gains = [b > max(scores[:i]) for i, b in enumerate(scores) if i > 0]
        assert gains == [True] * (len(gains) - 1) + [False], stage  # stopped at the first miss
    assert result["global_step"] < config.train.stage1.steps + config.train.stage3.steps


def test_model_selection_carries_the_best_across_stages(manifest_dir, tmp_path):
    """Stage 3 replaces stage 1's model only when it beats it on clean validation."""
    config = config_from_dict({"preset": "tiny", "method": "dat-no-dc-pretrain", "train": {"eval_every": 2}})
    train(config, load_manifest(manifest_dir), tmp_path / "run")
    evaluations = pd.read_csv(tmp_path / "run" / "valid.csv")
    best_row = evaluations.loc[evaluations["clean_pr_auc"].idxmax()]
    selection = json.loads((tmp_path / "run" / "selection.json").read_text())
    assert selection["chosen"]["score"] == pytest.approx(best_row["clean_pr_auc"])
    first_best = evaluations[evaluations["clean_pr_auc"] == best_row["clean_pr_auc"]].iloc[0]
    assert (selection["chosen"]["stage"], selection["chosen"]["step"]) == (first_best["stage"], first_best["step"])
    model = checkpoint.load(tmp_path / "run" / "best.pt", kind="model")
    assert (model["stage"], model["step"]) == (first_best["stage"], first_best["step"])
    stage1 = checkpoint.load(tmp_path / "run" / "best_stage1.pt", kind="model")
    assert stage1["stage"] == 1
    stage3_start = evaluations[(evaluations["stage"] == 3) & (evaluations["step"] == 0)]
    assert stage3_start["clean_pr_auc"].iloc[0] == pytest.approx(stage1["valid_pr_auc"])  # starts from stage 1's best


def test_training_shows_what_a_user_watches(manifest_dir, tmp_path):
    """The tiny preset too: a bar per stage that stays, with the losses, λ and the DC's
    accuracy; each validation's clean and noisy ROC-AUC / PR-AUC and where best.pt is."""
    code, out, err = _cli("train", "-m", manifest_dir, "-o", tmp_path / "run", "--preset", "tiny")
    assert code == 0, err
    final = [line.split("\r")[-1] for line in err.splitlines()]  # what stays on screen
    for stage in ("stage 1 (FE + LP)", "stage 2 (DC, FE frozen)", "stage 3"):
        bar = [line for line in final if line.startswith(stage + ":")]
        assert bar and "100%" in bar[-1], (stage, final)
    stage3 = [line for line in final if line.startswith("stage 3:")][-1]
    for shown in ("loss=", "lp=", "dc=", "λ=", "acc src=", "acc trg="):
        assert shown in stage3, stage3
    validations = [line for line in final if "valid clean ROC-AUC" in line]
    assert validations and all("PR-AUC" in line and "noisy ROC-AUC" in line for line in validations)
    assert str(tmp_path / "run" / "best.pt") in validations[-1]
    assert "Traceback" not in err
