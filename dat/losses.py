"""The losses of the three stages, on logits (autocast-safe: computed in float32)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["tag_loss", "domain_loss", "domain_accuracy"]


def tag_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Multi-label BCE of the LP. Shape: ``(B, T)``, ``(B, T)`` -> scalar."""
    return F.binary_cross_entropy_with_logits(logits.float(), labels.float())


def domain_loss(logits: torch.Tensor, domains: torch.Tensor) -> torch.Tensor:
    """DC loss: BCE with logits for ``(B,)`` binary logits, cross-entropy for ``(B, K)``."""
    if logits.dim() == 1:
        return F.binary_cross_entropy_with_logits(logits.float(), domains.float())
    return F.cross_entropy(logits.float(), domains.long())


def domain_accuracy(logits: torch.Tensor, domains: torch.Tensor) -> torch.Tensor:
    predicted = (logits > 0).long() if logits.dim() == 1 else logits.argmax(1)
    return (predicted == domains.long()).float().mean()
