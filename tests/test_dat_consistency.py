"""Issue 24's label-free method: the student tags each noisy crop as the frozen stage-1
teacher tags the clean music of the same window; the noisy side never reads tags."""

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from dat.config import config_from_dict, method_stages, preset, uses_target
from dat.data import SOURCE_DOMAIN, TARGET_DOMAIN, prepare_training_data
from dat.models import Nets, Tagger
from dat.stages import Batch, consistency_step
from dat.testing import write_synthetic_manifest
from dat.train import train
from noisemix import load_manifest
from noisemix import schema as S

LENGTH = preset("tiny").model.input_length


def _tagger(seed):
    torch.manual_seed(seed)
    nets = Nets(preset("tiny").model, num_tags=3, num_domains=2)
    return Tagger(nets.fe, nets.lp)


def test_the_loss_is_tags_on_clean_plus_w_times_bce_towards_the_teacher_on_the_clean_window():
    student, teacher = _tagger(0).eval(), _tagger(1).eval()  # eval: no dropout, so the loss can be recomputed
    g = torch.Generator().manual_seed(2)
    src = Batch(torch.randn(4, LENGTH, generator=g), torch.full((4,), SOURCE_DOMAIN),
                (torch.rand(4, 3, generator=g) > 0.5).float())
    trg = Batch(torch.randn(4, LENGTH, generator=g), torch.full((4,), TARGET_DOMAIN), None,
                torch.randn(4, LENGTH, generator=g))
    seen = []
    student.fe.register_forward_hook(lambda m, args, out: seen.append(args[0].shape[0]))
    out = consistency_step(student, teacher, src, trg, weight=0.7, autocast=lambda: torch.autocast("cpu", enabled=False))
    assert seen == [8]  # clean source and noisy target in one student pass
    with torch.no_grad():
        soft = torch.sigmoid(teacher(trg.clean_audio))
    logits = student(torch.cat([src.audio, trg.audio]))
    expected = F.binary_cross_entropy_with_logits(logits[:4], src.labels) + 0.7 * F.binary_cross_entropy_with_logits(
        logits[4:], soft)
    assert float(out["loss"].detach()) == pytest.approx(float(expected.detach()), rel=1e-5)
    out["loss"].backward()
    assert all(p.grad is None for p in teacher.parameters())  # the teacher stays as stage 1 left it
    assert any(p.grad is not None for p in student.parameters())


def test_consistency_reads_no_noisy_tags_and_trains_from_stage_1(tmp_path):
    assert method_stages("consistency") == [1, 3] and uses_target("consistency")
    manifest = load_manifest(write_synthetic_manifest(tmp_path / "m", tmp_path / "audio",
                                                      clips={"train": 8, "valid": 4, "test": 4}))
    config = config_from_dict({"preset": "tiny", "method": "consistency"})
    data = prepare_training_data(manifest, config, progress=False)
    assert S.TAGS not in data.target.rows.columns and data.target.labels is None
    item = data.target[(0, 0)]
    assert "labels" not in item and item["clean_audio"].shape == item["audio"].shape
    result = train(config, manifest, tmp_path / "run")
    log = pd.read_csv(tmp_path / "run" / "log.csv")
    stage3 = log[log["stage"] == 3]
    assert result["completed"] == [1, 3] and len(stage3) > 0
    assert stage3["loss_consistency"].notna().all() and (stage3["loss_consistency"] > 0).all()


def test_a_log_written_with_fewer_fields_gets_the_new_header_and_keeps_its_rows(tmp_path):
    from dat.logs import STEP_FIELDS, CsvLog

    old = STEP_FIELDS[:-1]  # a stage-1 log of a dat without the consistency column
    CsvLog(tmp_path / "log.csv", old).append({"global_step": 1, "stage": 1, "step": 1, "loss": 0.5})
    CsvLog(tmp_path / "log.csv", STEP_FIELDS).append({"global_step": 2, "stage": 3, "step": 1, "loss": 0.4,
                                                      "loss_consistency": 0.1})
    log = pd.read_csv(tmp_path / "log.csv")
    assert list(log.columns) == STEP_FIELDS and list(log["loss"]) == [0.5, 0.4]
    assert log["loss_consistency"].isna().iloc[0] and log["loss_consistency"].iloc[1] == 0.1
