"""The label predictor (LP) and the domain classifier (DC) on top of the embedding."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["LabelPredictor", "DomainClassifier"]


class LabelPredictor(nn.Module):
    """Embedding to tag logits: dropout then a linear layer, or one hidden ReLU layer.

    Shape: ``(B, E)`` -> ``(B, T)`` with T the manifest's tag count.
    """

    def __init__(self, embedding_dim: int, num_tags: int, hidden: int = 0, dropout: float = 0.5):
        super().__init__()
        if hidden > 0:
            self.net = nn.Sequential(nn.Dropout(dropout), nn.Linear(embedding_dim, hidden), nn.ReLU(),
                                     nn.Linear(hidden, num_tags))
        else:
            self.net = nn.Sequential(nn.Dropout(dropout), nn.Linear(embedding_dim, num_tags))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class DomainClassifier(nn.Module):
    """Linear-BN-ReLU-Linear-BN-ReLU-Linear on the (gradient-reversed) embedding.

    Returns logits: one per sample for the binary clean/noisy task (use
    ``BCEWithLogits``, which is autocast-safe), or ``num_classes`` for the
    per-category task (cross-entropy).

    Shape: ``(B, E)`` -> ``(B,)`` when ``num_classes == 2``, else ``(B, num_classes)``.
    """

    def __init__(self, embedding_dim: int, hidden: int, num_classes: int = 2):
        super().__init__()
        self.num_classes = num_classes
        out = 1 if num_classes == 2 else num_classes
        self.net = nn.Sequential(
            nn.Linear(embedding_dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(),
            nn.Linear(hidden, hidden), nn.BatchNorm1d(hidden), nn.ReLU(),
            nn.Linear(hidden, out),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        logits = self.net(z)
        return logits.squeeze(1) if self.num_classes == 2 else logits
