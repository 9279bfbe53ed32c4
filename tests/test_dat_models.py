"""GRL, schedules, SampleCNN layout and CLMR checkpoint loading."""

import math

import numpy as np

import pytest
import torch
from torch import nn

from dat.config import ModelConfig, preset
from dat.errors import DatError
from dat.grl import grad_reverse
from dat.models import DomainClassifier, LabelPredictor, SampleCNN, feature_extractor, load_clmr_state_dict
from dat.models.log_mel_cnn import LogMel, LogMelCNN, mel_filterbank
from dat.schedules import dann_lambda, grl_coefficient, lr_factor


@pytest.mark.parametrize("coeff", [0.0, 0.3, 1.0, 2.5])
def test_grl_is_identity_forward_and_scales_gradient_by_minus_lambda(coeff):
    x = torch.randn(5, 7, requires_grad=True)
    weights = torch.randn(5, 7)
    y = grad_reverse(x, coeff)
    assert torch.equal(y, x)
    (y * weights).sum().backward()
    assert torch.allclose(x.grad, -coeff * weights)


def test_dann_ramp_and_lambda_schedules():
    assert dann_lambda(0.0) == 0.0
    assert dann_lambda(1.0) == pytest.approx(2 / (1 + math.exp(-10)) - 1)
    assert dann_lambda(0.5) == pytest.approx(2 / (1 + math.exp(-5)) - 1)
    assert grl_coefficient(50, 100, "dann", 0.5) == pytest.approx(0.5 * dann_lambda(0.5))
    assert grl_coefficient(3, 100, "constant", 0.7) == 0.7
    assert lr_factor(0, 100, 10, "cosine") == pytest.approx(0.1)
    assert lr_factor(10, 100, 10, "cosine") == pytest.approx(1.0)
    assert lr_factor(100, 100, 10, "cosine") == pytest.approx(0.0)


def test_full_sample_cnn_matches_clmr_layout_and_parameter_count():
    config = preset("full").model
    fe = SampleCNN(config)
    assert config.input_length == 59049
    convs = [m for m in fe.modules() if isinstance(m, nn.Conv1d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size[0], c.stride[0], c.padding[0]) for c in convs] == (
        [(1, 128, 3, 3, 0)]
        + [(a, b, 3, 1, 1) for a, b in zip((128, 128, 128, 256, 256, 256, 256, 256, 256),
                                           (128, 128, 256, 256, 256, 256, 256, 256, 512))]
        + [(512, 512, 3, 1, 1)])
    assert sum(isinstance(m, nn.MaxPool1d) for m in fe.modules()) == 9
    assert sum(isinstance(m, nn.BatchNorm1d) for m in fe.modules()) == 11
    lp = LabelPredictor(512, 50, hidden=0, dropout=0.5)
    total = sum(p.numel() for p in fe.parameters()) + sum(p.numel() for p in lp.parameters())
    assert total == 2_394_162  # CLMR's "about 2.39 M" with its 50-tag linear head
    fe.eval()
    assert fe(torch.zeros(2, 59049)).shape == (2, 512)


@pytest.mark.parametrize("name, length, dim", [("cpu-samplecnn", 59049, 128), ("tiny", 2187, 32)])
def test_small_configurations(name, length, dim):
    config = preset(name).model
    fe = SampleCNN(config)
    assert config.input_length == length
    assert fe(torch.randn(3, 1, length)).shape == (3, dim)
    assert sum(p.numel() for p in fe.parameters()) < 200_000
    with pytest.raises(ValueError, match=f"expects \\(B, {length}\\)"):
        fe(torch.randn(3, length + 1))


def test_domain_classifier_layout_and_outputs():
    dc = DomainClassifier(32, 16, num_classes=2)
    kinds = [type(m) for m in dc.net]
    assert kinds == [nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Linear]
    assert dc(torch.randn(4, 32)).shape == (4,)
    assert DomainClassifier(32, 16, num_classes=4)(torch.randn(4, 32)).shape == (4, 4)
    assert LabelPredictor(32, 5, hidden=8)(torch.randn(4, 32)).shape == (4, 5)


def _clmr_style_state(fe: SampleCNN, prefix: str) -> dict:
    # CLMR names layer i's conv / BN sequential.i.0 / sequential.i.1, plus an fc head.
    state = {}
    for key, value in fe.state_dict().items():
        _, layer, part, name = key.split(".", 3)
        state[f"{prefix}sequential.{layer}.{0 if part == 'conv' else 1}.{name}"] = value.clone()
    state[f"{prefix}fc.weight"] = torch.zeros(50, fe.config.embedding_dim)
    return state


@pytest.mark.parametrize("wrap", ["plain", "lightning"])
def test_clmr_checkpoint_loads_into_fe(tmp_path, wrap):
    config = preset("tiny").model
    donor = SampleCNN(config)
    with torch.no_grad():
        for p in donor.parameters():
            p.add_(1.0)
    state = _clmr_style_state(donor, "encoder." if wrap == "plain" else "model.encoder.")
    torch.save(state if wrap == "plain" else {"state_dict": state}, tmp_path / "clmr.pt")
    fe = SampleCNN(config)
    load_clmr_state_dict(fe, tmp_path / "clmr.pt")
    for key, value in donor.state_dict().items():
        assert torch.equal(fe.state_dict()[key], value)


def test_clmr_checkpoint_of_other_shape_fails_clearly(tmp_path):
    torch.save(_clmr_style_state(SampleCNN(preset("tiny").model), "encoder."), tmp_path / "clmr.pt")
    other = SampleCNN(ModelConfig(channels=(8, 8, 16, 16, 16, 32, 64), embedding_dim=32))
    with pytest.raises(DatError, match="shape mismatch"):
        load_clmr_state_dict(other, tmp_path / "clmr.pt")
    with pytest.raises(DatError, match="not a CLMR SampleCNN"):
        load_clmr_state_dict(SampleCNN(preset("cpu-samplecnn").model), tmp_path / "clmr.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(DatError, match="not a loadable"):
        load_clmr_state_dict(other, tmp_path / "junk.pt")


def test_cpu_preset_is_a_small_log_mel_cnn_over_the_same_raw_input(tmp_path):
    config = preset("cpu").model
    fe = feature_extractor(config)
    assert isinstance(fe, LogMelCNN) and config.input_length == 59049
    assert sum(p.numel() for p in fe.parameters()) < 110_000
    assert fe(torch.randn(3, 59049)).shape == (3, 128)
    assert fe(torch.randn(3, 1, 59049)).shape == (3, 128)
    with pytest.raises(ValueError, match="expects \\(B, 59049\\)"):
        fe(torch.randn(3, 59050))
    with pytest.raises(DatError, match="a CLMR checkpoint is a SampleCNN"):
        load_clmr_state_dict(fe, tmp_path / "clmr.pt")


def test_mel_filterbank_tiles_the_spectrum_and_log_mel_sees_a_tone_in_its_band():
    filters = mel_filterbank(22050, 1024, 64)
    assert filters.shape == (513, 64) and filters.min() >= 0 and filters.max() <= 1.0
    assert (filters.sum(axis=0) > 0).all()  # no empty band
    sr, hz = 22050, 1000.0
    tone = torch.sin(2 * math.pi * hz * torch.arange(8192) / sr)[None]
    image = LogMel(sr, 1024, 512, 64)(tone)
    assert image.shape == (1, 1, 64, 1 + 8192 // 512)
    peak_band = int(image[0, 0, :, 4:-4].mean(dim=1).argmax())
    assert peak_band == int(np.argmax(filters[round(hz / (sr / 1024))]))


def test_log_mel_config_is_validated():
    with pytest.raises(DatError, match="embedding_dim=64"):
        ModelConfig(frontend="logmel", channels=(8, 16, 32, 64), embedding_dim=32).validate()
    with pytest.raises(DatError, match="halve"):
        ModelConfig(frontend="logmel", channels=(8,) * 7, embedding_dim=8).validate()
