"""The networks wired together for each use: tagging (FE + LP) and DAT (FE + LP + DC).

Each training stage wraps exactly the modules whose parameters it trains, so
``DistributedDataParallel`` never sees unused parameters.
"""

from __future__ import annotations

import torch
from torch import nn

from ..config import ModelConfig
from ..grl import grad_reverse
from .heads import DomainClassifier, LabelPredictor
from .log_mel_cnn import LogMelCNN
from .sample_cnn import SampleCNN

__all__ = ["Nets", "Tagger", "DatNet", "feature_extractor"]


def feature_extractor(config: ModelConfig) -> nn.Module:
    """The FE the config names: CLMR's SampleCNN, or the log-mel CNN of the ``cpu`` preset."""
    return LogMelCNN(config) if config.frontend == "logmel" else SampleCNN(config)


class Nets(nn.Module):
    """FE, LP and DC of one model, built from a :class:`ModelConfig` and the tag count."""

    def __init__(self, config: ModelConfig, num_tags: int, num_domains: int):
        super().__init__()
        self.fe = feature_extractor(config)
        self.lp = LabelPredictor(config.embedding_dim, num_tags, config.lp_hidden, config.lp_dropout)
        self.dc = DomainClassifier(config.embedding_dim, config.dc_hidden, num_domains)


class Tagger(nn.Module):
    """Audio to tag logits. Shape: ``(B, L)`` -> ``(B, T)``."""

    def __init__(self, fe: nn.Module, lp: LabelPredictor):
        super().__init__()
        self.fe, self.lp = fe, lp

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.lp(self.fe(audio))


class DatNet(nn.Module):
    """One forward pass over a concatenated [source; target] batch.

    Returns the LP logits of the first ``num_source`` rows and the DC logits of all
    rows, the DC seeing the embedding through a gradient reversal of coefficient ``coeff``.
    Shape: ``(Bs + Bt, L)`` -> ``(Bs, T)``, ``(Bs + Bt,)`` or ``(Bs + Bt, K)``.
    """

    def __init__(self, fe: nn.Module, lp: LabelPredictor, dc: DomainClassifier):
        super().__init__()
        self.fe, self.lp, self.dc = fe, lp, dc

    def forward(self, audio: torch.Tensor, num_source: int, coeff: float):
        z = self.fe(audio)
        return self.lp(z[:num_source]), self.dc(grad_reverse(z, coeff))
