"""The loss of one training step, per stage and method (no optimiser, no bookkeeping).

Stage 1, and stage 3 of ``source-only``: ``L = L_LP(src)``.
Stage 2 (``dat``): ``L = (L_DC(src) + L_DC(trg)) / 2`` on embeddings of the frozen FE.
Stage 3 of ``multicondition``: ``L = L_LP([src; trg])``, the noisy rows with their labels.
Stage 3 of the adversarial methods: ``L = L_LP(src) + w (L_DC(src) + L_DC(trg)) / 2``
with the DC behind a GRL of coefficient λ.
Stage 3 of ``consistency``: ``L = L_LP(src) + w BCE(student(trg), teacher(clean of trg))``,
the teacher's probabilities as soft targets, no labels of the noisy rows.

Source and target always go through the FE in one concatenated forward pass, so batch
normalisation sees the statistics of both domains, in stage 2 as in stage 3.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import nn

from .losses import domain_accuracy, domain_loss, tag_loss

__all__ = ["Batch", "frozen_with_batch_statistics", "lp_step", "dc_pretrain_step", "multicondition_step",
           "adversarial_step", "consistency_step", "ema_update"]


@dataclass
class Batch:
    """Audio, domain labels and (for labelled rows) tag targets of one domain, on the device."""

    audio: torch.Tensor
    domains: torch.Tensor
    labels: torch.Tensor | None = None
    clean_audio: torch.Tensor | None = None  # target rows: the clean music of the same windows


@contextlib.contextmanager
def frozen_with_batch_statistics(module: nn.Module):
    """Run ``module`` without gradients and without changing any parameter or buffer, its
    batch norms normalising with the statistics of the batch (as they do in stage 3).

    Eval mode would normalise with stage 1's running statistics of clean music only; the
    DC pre-trained on those features would then meet other inputs when stage 3 starts.
    """
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m, m.training, m.track_running_stats) for m in norms]
    was_training = module.training
    module.train()
    for m in norms:
        m.track_running_stats = False  # batch statistics, running buffers untouched
    try:
        with torch.no_grad():
            yield module
    finally:
        for m, training, track in saved:
            m.track_running_stats = track
            m.train(training)
        module.train(was_training)


def _dc_terms(dc_logits: torch.Tensor, src: Batch, trg: Batch) -> dict:
    n = src.audio.shape[0]
    loss = 0.5 * (domain_loss(dc_logits[:n], src.domains) + domain_loss(dc_logits[n:], trg.domains))
    detached = dc_logits.detach()
    return {"loss_dc": loss, "dc_acc_source": domain_accuracy(detached[:n], src.domains),
            "dc_acc_target": domain_accuracy(detached[n:], trg.domains)}


def lp_step(tagger: nn.Module, src: Batch, autocast) -> dict:
    """Stage 1 (and stage 3 of source-only): the LP's loss on labelled clean music."""
    with autocast():
        logits = tagger(src.audio)
    loss = tag_loss(logits, src.labels)
    return {"loss": loss, "loss_lp": loss}


def dc_pretrain_step(fe: nn.Module, dc: nn.Module, src: Batch, trg: Batch, autocast) -> dict:
    """Stage 2: only the DC learns; the FE is frozen (see :func:`frozen_with_batch_statistics`)."""
    with frozen_with_batch_statistics(fe), autocast():
        z = fe(torch.cat([src.audio, trg.audio]))
    dc.train()
    with autocast():
        logits = dc(z.float())
    out = _dc_terms(logits, src, trg)
    out["loss"] = out["loss_dc"]
    return out


def multicondition_step(tagger: nn.Module, src: Batch, noisy: Batch, autocast) -> dict:
    """Stage 3 of multicondition: the LP on clean and labelled noisy rows, one forward pass."""
    with autocast():
        logits = tagger(torch.cat([src.audio, noisy.audio]))
    loss = tag_loss(logits, torch.cat([src.labels, noisy.labels]))
    return {"loss": loss, "loss_lp": loss}


def adversarial_step(datnet: nn.Module, src: Batch, trg: Batch, coefficient: float, dc_weight: float,
                     autocast) -> dict:
    """Stage 3 of DAT: LP on the source, DC on both domains through the GRL."""
    with autocast():
        lp_logits, dc_logits = datnet(torch.cat([src.audio, trg.audio]), src.audio.shape[0], coefficient)
    out = _dc_terms(dc_logits, src, trg)
    out["loss_lp"] = tag_loss(lp_logits, src.labels)
    out["loss"] = out["loss_lp"] + dc_weight * out["loss_dc"]
    out["lambda"] = torch.tensor(coefficient)
    return out


def consistency_step(student: nn.Module, teacher: nn.Module, src: Batch, trg: Batch, weight: float,
                     autocast) -> dict:
    """Stage 3 of consistency: the LP on the source; on the target, the student's tags of
    each noisy crop pulled towards the frozen teacher's tags of its clean window."""
    with torch.no_grad(), autocast():
        soft = torch.sigmoid(teacher(trg.clean_audio).float())
    with autocast():
        logits = student(torch.cat([src.audio, trg.audio]))
    n = src.audio.shape[0]
    out = {"loss_lp": tag_loss(logits[:n], src.labels), "loss_consistency": tag_loss(logits[n:], soft)}
    out["loss"] = out["loss_lp"] + weight * out["loss_consistency"]
    return out


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, decay: float) -> None:
    """``teacher <- decay * teacher + (1 - decay) * student``, parameters and float buffers
    (batch-norm statistics) alike (a mean teacher); integer buffers are copied."""
    for mine, theirs in zip(teacher.state_dict().values(), student.state_dict().values()):
        if mine.dtype.is_floating_point:
            mine.mul_(decay).add_(theirs.detach(), alpha=1.0 - decay)
        else:
            mine.copy_(theirs)
