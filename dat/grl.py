"""Gradient reversal layer (Ganin & Lempitsky, 2015).

Forward: ``y = x``. Backward: ``dL/dx = -λ · dL/dy``. Placed between the feature
extractor and the domain classifier, it lets one backward pass train the classifier to
separate the domains while pushing the features to make them inseparable.

The coefficient is passed on every call rather than stored on the module, so it is a
pure function of the saved training step (see :mod:`dat.schedules`) and survives resume.
"""

from __future__ import annotations

import torch

__all__ = ["grad_reverse", "GradientReversal"]


class _GradReverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, coeff: float) -> torch.Tensor:
        ctx.coeff = float(coeff)
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad.neg() * ctx.coeff, None


def grad_reverse(x: torch.Tensor, coeff: float) -> torch.Tensor:
    """Identity on ``x``; multiplies the gradient flowing back by ``-coeff``.

    Shape: any; the output has the shape of ``x``.
    """
    return _GradReverse.apply(x, coeff)


class GradientReversal(torch.nn.Module):
    """Module form of :func:`grad_reverse`; the coefficient is an argument of ``forward``."""

    def forward(self, x: torch.Tensor, coeff: float) -> torch.Tensor:
        return grad_reverse(x, coeff)
