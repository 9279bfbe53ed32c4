"""Every dat command, given a bad argument, answers in one line (``error: ...``, exit 2),
names what is wrong, and reads no data first: no traceback, no progress bars."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from dat.cli import app
from noisemix.testing import write_synthetic_manifest


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli-errors")
    write_synthetic_manifest(tmp / "m", tmp / "audio", clips={"train": 4, "valid": 2, "test": 2})
    (tmp / "bad.toml").write_text("this is = = not toml")
    (tmp / "run-without-model").mkdir()
    (tmp / "x.wav").write_text("not audio")
    return tmp


TRAIN = ["train", "-m", "{m}", "-o", "{tmp}/r"]
CASES = {
    "train, no manifest": (["train", "-m", "{tmp}/nope", "-o", "{tmp}/r"], "nope/manifest.json: not found"),
    "train, unknown preset": (TRAIN + ["--preset", "nope"], "preset 'nope'"),
    "train, unknown method": (TRAIN + ["--method", "nope"], "method='nope'"),
    "train, unknown field": (TRAIN + ["--set", "train.nope=1"], "unknown field(s) nope"),
    "train, bad value": (TRAIN + ["--set", "train.stage1.steps=abc"], "expected int"),
    "train, --set without =": (TRAIN + ["--set", "train.stage1.steps"], "expected KEY=VALUE"),
    "train, no config file": (TRAIN + ["--config", "{tmp}/nope.toml"], "nope.toml: not a readable TOML config"),
    "train, broken config": (TRAIN + ["--config", "{tmp}/bad.toml"], "bad.toml: not a readable TOML config"),
    "train, unknown device": (TRAIN + ["--device", "tpu"], "--device 'tpu'"),
    "train, fold of an unfolded manifest": (TRAIN + ["--fold", "3"], "built without folds"),
    "train, a stage the method lacks": (TRAIN + ["--stage", "7"], "has no stage 7"),
    "train, bad root": (TRAIN + ["--root", "noequals"], "expected NAME=PATH"),
    "train, nothing to resume": (["train", "-m", "{m}", "-o", "{tmp}/fresh", "--resume"], "nothing to resume"),
    "train, no pretrained file": (TRAIN + ["--pretrained", "{tmp}/nope.pt"], "nope.pt: pretrained checkpoint not found"),
    "evaluate, run without a model": (["evaluate", "{tmp}/run-without-model", "-m", "{m}"], "best.pt: checkpoint not found"),
    "compare, run never evaluated": (["compare", "{tmp}/run-without-model"], "metrics.json: not found"),
    "experiment, no recipe": (["experiment", "{tmp}/nope.toml", "-o", "{tmp}/e"], "nope.toml: not a readable TOML recipe"),
    "experiment, broken recipe": (["experiment", "{tmp}/bad.toml", "-o", "{tmp}/e"], "bad.toml: not a readable TOML recipe"),
    "tag, run without a model": (["tag", "{tmp}/run-without-model", "{tmp}/x.wav"], "best.pt: checkpoint not found"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_bad_argument_is_one_line(folder, case):
    args, needle = CASES[case]
    result = CliRunner().invoke(app, [a.format(tmp=folder, m=folder / "m") for a in args])
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert needle in lines[0], lines[0]
