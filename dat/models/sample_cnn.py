"""SampleCNN feature extractor (Lee et al., 2017) in the layout CLMR uses.

Layer ``0`` (stem): ``Conv1d(1, c0, k=s, stride=s) + BN + ReLU``.
Layers ``1 .. n``: ``Conv1d(c_{i-1}, c_i, k=3, p=1) + BN + ReLU + MaxPool1d(3)``.
Last layer: ``Conv1d(c_n, E, k=3, p=1) + BN + ReLU`` on a single frame, flattened to the
E-dimensional embedding. With the default 10 channel counts (128, 128, 128, 256 x 6,
512), ``s = 3`` and ``E = 512`` this is CLMR's encoder: 59049 samples in, about 2.37 M
parameters (2.39 M with CLMR's 50-tag linear head).

The input length is ``s * 3**n`` and is checked on every call: the network only
reduces to one frame for exactly that length.
"""

from __future__ import annotations

import re

import torch
from torch import nn

from ..config import ModelConfig
from ..errors import DatError

__all__ = ["SampleCNN", "load_clmr_state_dict"]


class ConvBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, pool: bool):
        super().__init__()
        self.conv = nn.Conv1d(c_in, c_out, kernel_size=kernel, stride=stride, padding=padding)
        self.bn = nn.BatchNorm1d(c_out)
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool1d(3) if pool else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.relu(self.bn(self.conv(x))))


class SampleCNN(nn.Module):
    """Raw waveform to embedding.

    Shape: ``(B, L)`` or ``(B, 1, L)`` with ``L = config.input_length`` -> ``(B, E)``.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        config.validate()
        self.config = config
        self.input_length = config.input_length
        chans = config.channels
        layers = [ConvBlock(1, chans[0], config.first_stride, config.first_stride, 0, pool=False)]
        layers += [ConvBlock(chans[i - 1], chans[i], 3, 1, 1, pool=True) for i in range(1, len(chans))]
        layers.append(ConvBlock(chans[-1], config.embedding_dim, 3, 1, 1, pool=False))
        self.layers = nn.Sequential(*layers)
        for module in self.modules():
            if isinstance(module, nn.Conv1d):
                # CLMR's initialisation: He-uniform suits the ReLU stack.
                nn.init.kaiming_uniform_(module.weight, mode="fan_in", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(waveform_batch(x, self.input_length, "SampleCNN").unsqueeze(1)).flatten(1)


def waveform_batch(x: torch.Tensor, length: int, model: str) -> torch.Tensor:
    """``(B, L)`` or ``(B, 1, L)`` audio as ``(B, L)``; anything else is refused by name."""
    if x.dim() == 3 and x.shape[1] == 1:
        x = x[:, 0]
    if x.dim() != 2 or x.shape[-1] != length:
        raise ValueError(f"{model} expects (B, {length}) or (B, 1, {length}) audio, got {tuple(x.shape)}")
    return x


# CLMR names layer i's conv / BN as sequential.i.0 / sequential.i.1 (encoder. / model.
# prefixes from its Lightning wrappers); ours are layers.i.conv / layers.i.bn.
_CLMR_KEY = re.compile(r"^(?:.*\.)?sequential\.(\d+)\.([01])\.(\w+)$")


def load_clmr_state_dict(fe: SampleCNN, path) -> None:
    """Load a CLMR SampleCNN checkpoint (``.pt`` state dict or Lightning ``.ckpt``) into ``fe``.

    Its ``fc`` head is ignored (our LP is trained on the manifest's vocabulary). Raises
    :class:`DatError` when the file is not a CLMR SampleCNN of ``fe``'s shape.
    """
    if not isinstance(fe, SampleCNN):
        raise DatError(f"{path}: a CLMR checkpoint is a SampleCNN; this model's FE is {type(fe).__name__} "
                       f"(use a preset with frontend 'samplecnn', e.g. full or cpu-samplecnn)")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise DatError(f"{path}: pretrained checkpoint not found") from None
    except Exception as exc:  # torch raises several types for non-checkpoint / unsafe files
        raise DatError(f"{path}: not a loadable weights-only checkpoint ({str(exc).splitlines()[0]})") from None
    state = raw.get("state_dict", raw) if isinstance(raw, dict) else None
    if not isinstance(state, dict):
        raise DatError(f"{path}: expected a state dict")
    mapped = {}
    for key, value in state.items():
        match = _CLMR_KEY.match(str(key))
        if match:
            layer, part, name = match.groups()
            mapped[f"layers.{layer}.{'conv' if part == '0' else 'bn'}.{name}"] = value
    own = fe.state_dict()
    missing = sorted(set(own) - set(mapped))
    unexpected = sorted(set(mapped) - set(own))
    if missing or unexpected:
        detail = f"missing {missing[0]}" if missing else f"unexpected {unexpected[0]}"
        raise DatError(f"{path}: not a CLMR SampleCNN with {len(fe.config.channels) + 1} conv layers "
                       f"({len(missing)} missing, {len(unexpected)} unexpected keys; {detail})")
    bad = [k for k in own if tuple(own[k].shape) != tuple(mapped[k].shape)]
    if bad:
        raise DatError(f"{path}: shape mismatch at {bad[0]}: checkpoint {tuple(mapped[bad[0]].shape)}, "
                       f"model {tuple(own[bad[0]].shape)} (check the preset / model config)")
    fe.load_state_dict(mapped)
