"""Clip-level predictions: sigmoid outputs averaged over a clip's non-overlapping chunks.

Shared by validation during training, ``dat evaluate`` and ``dat tag``. Under DDP each
rank predicts a share of the clips and the sums are gathered, so every rank ends up with
the same full prediction matrix.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset

from . import distributed
from .data import ChunkDataset, pad_to

__all__ = ["predict_clips", "predict_audio"]


@torch.no_grad()
def predict_clips(tagger: torch.nn.Module, dataset: ChunkDataset, batch_size: int, num_workers: int,
                  ctx: distributed.Context | None = None, autocast=contextlib.nullcontext,
                  progress: bool = False) -> np.ndarray:
    """``(clips, tags)`` mean sigmoid outputs, one row per row of ``dataset.rows``."""
    from tqdm import tqdm

    ctx = ctx or distributed.Context(0, 1, torch.device("cpu"))
    mine = np.flatnonzero(dataset.row_of % ctx.world == ctx.rank)
    # Own generator: validation must not consume the training RNG stream.
    loader = DataLoader(Subset(dataset, mine.tolist()), batch_size=batch_size, num_workers=num_workers,
                        generator=torch.Generator().manual_seed(0))
    was_training = tagger.training
    tagger.eval()
    sums, counts = None, np.zeros(len(dataset.rows))
    for batch in tqdm(loader, desc="predict", disable=not progress, leave=False):
        with autocast():
            logits = tagger(batch["audio"].to(ctx.device, non_blocking=True))
        probs = torch.sigmoid(logits.float()).cpu().numpy().astype(np.float64)
        if sums is None:
            sums = np.zeros((len(dataset.rows), probs.shape[1]))
        rows = batch["row"].numpy()
        np.add.at(sums, rows, probs)
        np.add.at(counts, rows, 1)
    tagger.train(was_training)
    parts = distributed.gather_array(ctx, np.concatenate([sums if sums is not None else np.zeros((len(counts), 0)),
                                                          counts[:, None]], axis=1))
    parts = [p for p in parts if p.shape[1] > 1]
    total = np.sum(parts, axis=0)
    return (total[:, :-1] / np.maximum(total[:, -1:], 1)).astype(np.float32)


@torch.no_grad()
def predict_audio(tagger: torch.nn.Module, audio: np.ndarray, input_length: int) -> np.ndarray:
    """Mean sigmoid outputs over the non-overlapping chunks of one clip (padded if short)."""
    count = max(audio.size // input_length, 1)
    if audio.size < input_length:
        audio = pad_to(audio, input_length)
    chunks = torch.from_numpy(np.ascontiguousarray(audio[:count * input_length], dtype=np.float32))
    tagger.eval()
    return torch.sigmoid(tagger(chunks.view(count, input_length))).mean(0).numpy()
