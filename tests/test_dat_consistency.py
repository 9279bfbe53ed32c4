"""Issue 24's label-free method: the student tags each noisy crop as the frozen stage-1
teacher tags the clean music of the same window; the noisy side never reads tags."""

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from dat.config import config_from_dict, method_stages, preset, uses_target
from dat.data import SOURCE_DOMAIN, TARGET_DOMAIN, prepare_training_data
from dat.errors import DatError
from dat.models import Nets, Tagger
from dat.stages import Batch, consistency_step
from dat.train import train
from noisemix import load_manifest
from noisemix import schema as S
from noisemix.testing import write_synthetic_manifest

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
    teachers = []

    def look(trainer):  # after every step: the teacher, once stage 3 has one, is frozen and in eval mode
        if trainer.teacher is not None:
            teachers.append((trainer.teacher.training, any(p.requires_grad for p in trainer.teacher.parameters()),
                             [p.detach().clone() for p in trainer.teacher.parameters()][:2]))

    result = train(config, manifest, tmp_path / "run", on_step=look)
    log = pd.read_csv(tmp_path / "run" / "log.csv")
    stage3 = log[log["stage"] == 3]
    assert result["completed"] == [1, 3] and len(stage3) > 0 and teachers
    assert not any(training or grad for training, grad, _ in teachers)
    assert all(torch.equal(a, b) for _, _, first in teachers[:1] for _, _, later in teachers for a, b in zip(first, later))
    assert stage3["loss_consistency"].notna().all() and (stage3["loss_consistency"] > 0).all()


def test_ema_update_moves_every_float_tensor_towards_the_student():
    from dat.stages import ema_update

    teacher, student = _tagger(0), _tagger(1)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    ema_update(teacher, student, 0.9)
    for key, value in teacher.state_dict().items():
        theirs = student.state_dict()[key]
        expected = 0.9 * before[key] + 0.1 * theirs if value.dtype.is_floating_point else theirs
        assert torch.allclose(value, expected, atol=1e-6), key
    assert not any(p.requires_grad and p.grad is not None for p in teacher.parameters())


@pytest.mark.parametrize("teacher", ["stage1", "ema"])
def test_a_killed_consistency_run_resumes_to_the_same_weights_and_teacher(tmp_path, teacher):
    from dat import checkpoint

    manifest = load_manifest(write_synthetic_manifest(tmp_path / "m", tmp_path / "audio",
                                                      clips={"train": 8, "valid": 4, "test": 4}))
    values = {"preset": "tiny", "method": "consistency", "data": {"num_workers": 1},
              "train": {"deterministic": True, "stage1": {"steps": 4}, "stage3": {"steps": 6}, "checkpoint_every": 2,
                        "eval_every": 2, "consistency_teacher": teacher, "teacher_ema_decay": 0.5}}
    train(config_from_dict(values), manifest, tmp_path / "straight")

    class Killed(Exception):
        pass

    def kill(trainer):
        if trainer.progress.global_step == 9:  # stage 3 step 5; the last checkpoint is at step 8
            raise Killed

    with pytest.raises(Killed):
        train(config_from_dict(values), manifest, tmp_path / "resumed", on_step=kill)
    train(config_from_dict(values), manifest, tmp_path / "resumed", resume=True)
    a, b = (checkpoint.load(tmp_path / run / "last.pt") for run in ("straight", "resumed"))
    parts = ("fe", "lp") + (("teacher",) if teacher == "ema" else ())
    for part in parts:
        for key in a[part]:
            assert torch.equal(a[part][key], b[part][key]), (part, key)
    assert a["progress"] == b["progress"] and a["streams"] == b["streams"]
    stage1 = checkpoint.load(tmp_path / "straight" / "best_stage1.pt")
    if teacher == "ema":  # the teacher followed the student: neither stage 1 nor the student
        moved = a["teacher"]["fe." + next(iter(stage1["fe"]))]
        assert not torch.equal(moved, next(iter(stage1["fe"].values())))
        assert not torch.equal(moved, next(iter(a["fe"].values())))
    else:
        assert "teacher" not in a  # a frozen teacher is stage 1's best, reloaded from best_stage1.pt


def test_target_rows_can_come_from_pieces_outside_the_labelled_set(tmp_path):
    manifest = load_manifest(write_synthetic_manifest(tmp_path / "m", tmp_path / "audio",
                                                      clips={"train": 24, "valid": 4, "test": 4}))
    group = manifest.sources[S.GROUP]
    values = {"preset": "tiny", "method": "consistency", "data": {"labelled_share": 0.5}}
    pieces = {}
    for which in ("all", "labelled", "unlabelled"):
        data = prepare_training_data(manifest, config_from_dict(values | {"data": {"labelled_share": 0.5,
                                                                                    "target_pieces": which}}),
                                     progress=False)
        pieces[which] = set(data.target.rows[S.CLEAN_SOURCE_ID].map(group))
        labelled = set(data.source.rows[S.CLEAN_SOURCE_ID].map(group))
    train_pieces = set(manifest.split_rows("train")[S.CLEAN_SOURCE_ID].map(group))
    assert 0 < len(labelled) < len(train_pieces)  # half the pieces, drawn by name
    assert pieces["labelled"] == labelled and pieces["unlabelled"] == train_pieces - labelled
    assert pieces["all"] == train_pieces and S.TAGS not in data.target.rows.columns
    again = prepare_training_data(manifest, config_from_dict(values | {"seed": 5}), progress=False)
    assert set(again.source.rows[S.CLEAN_SOURCE_ID].map(group)) == labelled  # not drawn from the seed
    run = config_from_dict({"preset": "tiny", "method": "consistency",
                            "data": {"labelled_share": 0.5, "target_pieces": "unlabelled"}})
    assert train(run, manifest, tmp_path / "run")["completed"] == [1, 3]
    with pytest.raises(DatError, match="no noisy train rows of unlabelled pieces"):
        prepare_training_data(manifest, config_from_dict({"preset": "tiny", "method": "consistency",
                                                          "data": {"target_pieces": "unlabelled"}}), progress=False)


def test_a_log_written_with_fewer_fields_gets_the_new_header_and_keeps_its_rows(tmp_path):
    from dat.logs import STEP_FIELDS, CsvLog

    old = STEP_FIELDS[:-1]  # a stage-1 log of a dat without the consistency column
    CsvLog(tmp_path / "log.csv", old).append({"global_step": 1, "stage": 1, "step": 1, "loss": 0.5})
    CsvLog(tmp_path / "log.csv", STEP_FIELDS).append({"global_step": 2, "stage": 3, "step": 1, "loss": 0.4,
                                                      "loss_consistency": 0.1})
    log = pd.read_csv(tmp_path / "log.csv")
    assert list(log.columns) == STEP_FIELDS and list(log["loss"]) == [0.5, 0.4]
    assert log["loss_consistency"].isna().iloc[0] and log["loss_consistency"].iloc[1] == 0.1
