"""The DANN method checked piece by piece against the reference (Ganin & Lempitsky; tllib's
``dann.py`` / ``grl.py``): what each stage computes, updates and keeps frozen."""

import json

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from dat.config import config_from_dict, preset
from dat.data import SOURCE_DOMAIN, TARGET_DOMAIN
from dat.memory import keep_freed_memory
from dat.models import DatNet, Nets
from dat.schedules import dann_lambda, grl_coefficient
from dat.stages import Batch, adversarial_step, dc_pretrain_step, frozen_with_batch_statistics
from dat.train import train
from noisemix import load_manifest
from noisemix.testing import write_synthetic_manifest

LENGTH = preset("tiny").model.input_length


def _nets(seed=0):
    torch.manual_seed(seed)
    return Nets(preset("tiny").model, num_tags=3, num_domains=2)


def _batches(n=6, seed=1):
    g = torch.Generator().manual_seed(seed)
    src = Batch(torch.randn(n, LENGTH, generator=g), torch.full((n,), SOURCE_DOMAIN),
                (torch.rand(n, 3, generator=g) > 0.5).float())
    trg = Batch(torch.randn(n, LENGTH, generator=g) * 2.0, torch.full((n,), TARGET_DOMAIN))
    return src, trg


def _no_amp():
    return torch.autocast("cpu", enabled=False)


def _state(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


def test_lambda_ramps_over_a_fixed_horizon_not_over_the_stage_length():
    # The same step gives the same λ whatever stage 3's length; the ramp ends at the horizon and holds.
    assert grl_coefficient(100, 2000, "dann", 1.0) == pytest.approx(dann_lambda(0.05))
    assert grl_coefficient(100, 2000, "dann", 1.0) < 0.25
    assert grl_coefficient(5000, 2000, "dann", 0.7) == pytest.approx(0.7 * dann_lambda(1.0))
    assert preset("cpu").train.lambda_horizon_steps > preset("cpu").train.stage3.steps


def test_adversarial_step_is_one_forward_of_both_domains_with_the_mean_dc_loss():
    nets, (src, trg) = _nets(), _batches()
    datnet = DatNet(nets.fe, nets.lp, nets.dc)
    seen = []
    nets.fe.register_forward_hook(lambda m, args, out: seen.append(args[0].shape[0]))
    out = adversarial_step(datnet, src, trg, coefficient=0.3, dc_weight=0.5, autocast=_no_amp)
    assert seen == [12]  # source and target in one pass: batch norm sees both domains
    # Recompute the reference loss from the same (train-mode) forward.
    torch.manual_seed(0)
    z = nets.fe(torch.cat([src.audio, trg.audio]))
    logits = nets.dc(z)
    bce_s = F.binary_cross_entropy_with_logits(logits[:6], torch.zeros(6))
    bce_t = F.binary_cross_entropy_with_logits(logits[6:], torch.ones(6))
    assert float(out["loss_dc"].detach()) == pytest.approx(float(0.5 * (bce_s + bce_t)), rel=1e-4)
    assert float(out["loss"]) == pytest.approx(float(out["loss_lp"] + 0.5 * out["loss_dc"]), rel=1e-5)
    assert 0.0 <= float(out["dc_acc_source"]) <= 1.0 and 0.0 <= float(out["dc_acc_target"]) <= 1.0


@pytest.mark.parametrize("coefficient", [0.0, 0.4])
def test_the_fe_receives_minus_lambda_times_the_dc_gradient(coefficient):
    """d/dθ_FE of the DAT loss = d L_LP - λ·w·d L_DC; the DC itself descends on L_DC."""
    nets, (src, trg) = _nets(), _batches()
    nets.lp.eval()  # no dropout: the three backward passes below see the same function
    datnet = DatNet(nets.fe, nets.lp, nets.dc)

    def grads(loss_key, coeff):
        datnet.zero_grad()
        out = adversarial_step(datnet, src, trg, coeff, 1.0, _no_amp)
        out[loss_key].backward()
        return ([p.grad.clone() for p in nets.fe.parameters()],
                [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in nets.dc.parameters()])

    fe_total, dc_total = grads("loss", coefficient)
    fe_lp, _ = grads("loss_lp", coefficient)
    fe_dc_plain, dc_plain = grads("loss_dc", -1.0)  # coefficient -1: the GRL passes +1 x the gradient
    for total, lp, dc in zip(fe_total, fe_lp, fe_dc_plain):
        torch.testing.assert_close(total, lp - coefficient * dc, rtol=1e-4, atol=1e-6)
    for total, plain in zip(dc_total, dc_plain):
        torch.testing.assert_close(total, plain, rtol=1e-4, atol=1e-6)


def test_stage2_trains_only_the_dc_and_the_frozen_fe_uses_batch_statistics():
    nets, (src, trg) = _nets(), _batches()
    nets.fe.train()
    before = _state(nets.fe)
    out = dc_pretrain_step(nets.fe, nets.dc, src, trg, _no_amp)
    out["loss"].backward()
    assert all(p.grad is None for p in nets.fe.parameters())
    assert all(p.grad is not None for p in nets.dc.parameters())
    after = _state(nets.fe)
    assert all(torch.equal(before[k], after[k]) for k in before)  # weights and BN running stats untouched
    # The features the DC sees are the batch-statistics features of stage 3, not eval-mode ones.
    both = torch.cat([src.audio, trg.audio])
    with frozen_with_batch_statistics(nets.fe):
        frozen = nets.fe(both)
    reference = _nets()
    reference.fe.load_state_dict(before)
    reference.fe.train()
    with torch.no_grad():
        assert torch.allclose(frozen, reference.fe(both), atol=1e-5)
        reference.fe.eval()
        assert not torch.allclose(frozen, reference.fe(both), atol=1e-3)


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    root = tmp_path_factory.mktemp("method")
    return load_manifest(write_synthetic_manifest(root / "m", root / "audio", clips={"train": 16, "valid": 6,
                                                                                      "test": 4}))


def test_stage2_leaves_the_fe_exactly_as_stage1_left_it(manifest, tmp_path):
    config = config_from_dict({"preset": "tiny", "method": "dat", "train": {"stage3": {"steps": 0}}})
    train(config, manifest, tmp_path / "run")
    from dat import checkpoint

    stage1 = checkpoint.load(tmp_path / "run" / "best_stage1.pt", kind="model")
    last = checkpoint.load(tmp_path / "run" / "last.pt", kind="train")
    assert last["progress"]["completed"] == [1, 2, 3]
    for key, value in stage1["fe"].items():
        assert torch.equal(value, last["fe"][key]), key
    log = pd.read_csv(tmp_path / "run" / "log.csv")
    assert log[log["stage"] == 2]["dc_acc_target"].notna().all()


def test_lambda_in_the_log_follows_the_fixed_horizon(manifest, tmp_path):
    config = config_from_dict({"preset": "tiny", "method": "dat-no-dc-pretrain"})
    train(config, manifest, tmp_path / "run")
    log = pd.read_csv(tmp_path / "run" / "log.csv")
    stage3 = log[log["stage"] == 3]
    horizon = config.train.lambda_horizon_steps
    expected = [grl_coefficient(s - 1, horizon, "dann", 1.0) for s in stage3["step"]]  # λ of the update
    assert list(stage3["lambda"]) == pytest.approx(expected, abs=1e-6)


def test_stage1_from_gives_the_run_that_would_have_trained_stage1_itself(manifest, tmp_path):
    from dat import checkpoint

    values = {"preset": "tiny", "method": "multicondition", "train": {"deterministic": True}}
    straight = train(config_from_dict(values), manifest, tmp_path / "straight")
    train(config_from_dict(dict(values, method="source-only")), manifest, tmp_path / "s1", stages=[1])
    shared = train(config_from_dict(values), manifest, tmp_path / "shared", stage1_from=tmp_path / "s1")
    assert shared["global_step"] == straight["global_step"] and shared["selection"] == straight["selection"]
    a = checkpoint.load(tmp_path / "straight" / "last.pt")
    b = checkpoint.load(tmp_path / "shared" / "last.pt")
    for part in ("fe", "lp"):
        for key in a[part]:
            assert torch.equal(a[part][key], b[part][key]), (part, key)
    info = json.loads((tmp_path / "shared" / "run.json").read_text())
    assert info["stage1_from"] == str(tmp_path / "s1")
    other = config_from_dict(dict(values, seed=1))
    from dat.errors import DatError

    with pytest.raises(DatError, match="another config \\(seed"):
        train(other, manifest, tmp_path / "bad", stage1_from=tmp_path / "s1")


def test_a_stage1_saved_before_newer_config_fields_is_still_imported_and_resumed(manifest, tmp_path):
    """Fields added to the config since (they default to what dat did before) do not make an
    older run's stage 1 "another config" for --stage1-from, nor block --resume."""
    from dat import checkpoint

    values = {"preset": "tiny", "method": "consistency", "train": {"deterministic": True}}
    train(config_from_dict(dict(values, method="source-only")), manifest, tmp_path / "s1", stages=[1])
    saved = checkpoint.load(tmp_path / "s1" / "last.pt")
    for section, key in (("data", "labelled_share"), ("data", "target_pieces"), ("train", "consistency_teacher")):
        del saved["config"][section][key]  # as an earlier dat wrote it
    checkpoint.save(saved, tmp_path / "s1" / "last.pt")
    result = train(config_from_dict(values), manifest, tmp_path / "run", stage1_from=tmp_path / "s1")
    assert result["completed"] == [1, 3]
    assert train(config_from_dict(dict(values, method="source-only")), manifest, tmp_path / "s1",
                 resume=True)["completed"] == [1, 3]


_ALLOCATE_AND_FREE = """
import json, resource
import torch
from dat.memory import keep_freed_memory
kept = keep_freed_memory()

def step():  # activations of several sizes, allocated and freed as in a training step
    for size in (500_000, 1_000_000, 2_000_000, 3_000_000, 8_000_000):
        a = torch.ones(size); b = torch.ones(2 * size); del a; c = torch.ones(size // 2); del b, c

for _ in range(3):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    step()
print(json.dumps({"kept": kept, "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before}))
"""

_TRAIN_TINY = """
import sys, torch
from dat.config import config_from_dict
from dat.train import train
from noisemix import load_manifest
config = config_from_dict({"preset": "tiny", "method": "dat", "train": {"deterministic": True}})
train(config, load_manifest(sys.argv[1]), sys.argv[2])
"""


def _child(code: str, *args, fix: bool) -> str:
    import os
    import subprocess
    import sys

    env = dict(os.environ, DAT_KEEP_FREED_MEMORY="1" if fix else "0")
    done = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_freed_memory_is_kept_by_the_allocator():
    import platform

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("mallopt is glibc's")
    with_fix = json.loads(_child(_ALLOCATE_AND_FREE, fix=True).splitlines()[-1])
    without = json.loads(_child(_ALLOCATE_AND_FREE, fix=False).splitlines()[-1])
    assert with_fix["kept"] and not without["kept"]
    assert without["faults"] > 20 * 5_000  # measured here: 312,520 (each step faults its tensors in again)
    assert with_fix["faults"] < 1_000    # measured here: 0


def test_keeping_freed_memory_does_not_change_results(manifest, tmp_path):
    for fix in (True, False):
        _child(_TRAIN_TINY, manifest.directory, tmp_path / f"fix-{fix}", fix=fix)
    a = torch.load(tmp_path / "fix-True" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "fix-False" / "last.pt", weights_only=True)
    for part in ("fe", "lp", "dc"):
        assert a[part].keys() == b[part].keys()
        assert all(torch.equal(a[part][k], b[part][k]) for k in a[part]), part
