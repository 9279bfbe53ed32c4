"""Two CPU processes with the gloo backend, launched the way users launch them: torchrun."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

from dat import checkpoint
from noisemix.testing import write_synthetic_manifest

REPO = Path(__file__).resolve().parents[1]


def test_two_process_gloo_training(tmp_path):
    manifest = write_synthetic_manifest(tmp_path / "m", tmp_path / "audio", clips={"train": 16, "valid": 4, "test": 2})
    run = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               "-m", "dat.cli", "train", "-m", str(manifest), "-o", str(run), "--preset", "tiny",
               "--set", "train.stage1.steps=4", "--set", "train.stage2.steps=2", "--set", "train.stage3.steps=4",
               "--set", "train.eval_every=4", "--set", "data.batch_size=4"]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    info = json.loads((run / "run.json").read_text())
    assert info["world_size"] == 2
    state = checkpoint.load(run / "last.pt", kind="train")
    assert len(state["rng"]) == 2  # each rank's RNG state is saved for resume
    assert state["progress"]["completed"] == [1, 2, 3]
    # Each rank draws its own shard: 16 clean train rows / 2 ranks / batch 4 = 2 batches per epoch
    # (one process would see 4), and stages 1, 2 and 3 drew 4 + 2 + 4 source batches.
    source = state["streams"]["source"]
    assert source["epoch"] * 2 + source["batch"] == 10
    valid = pd.read_csv(run / "valid.csv")
    assert len(valid) == len(valid["global_step"].unique()) >= 2  # rank 0 alone logs, with gathered metrics
    assert checkpoint.load(run / "best.pt", kind="model")["method"] == "dat"
