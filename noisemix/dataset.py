"""A framework-free dataset of manifest rows: any framework's loader can wrap it."""

from __future__ import annotations

from pathlib import Path

import numpy as np


from . import schema as S
from .manifest import Manifest
from .mix import Mixer

__all__ = ["MixtureDataset"]


class MixtureDataset:
    """The mixtures of a manifest (one split, or all), mixed on access.

    ``dataset[i]`` is a dict: ``audio`` (float32, shape ``(num_output_frames,)``, at
    ``sample_rate`` Hz, the same samples ``noisemix render`` writes before 16-bit rounding),
    ``sample_rate``, ``mixture_id``, ``split``, ``tags`` (``;``-joined text), ``labels`` (float32
    multi-hot over ``dataset.vocabulary``, the manifest's tags), ``snr_db`` (float, NaN on clean
    rows), ``noise_category`` ('' on clean rows); with ``stems=True`` also ``clean``
    and ``noise`` (the scaled stems; ``noise`` is None on clean rows). It has ``__len__`` and
    ``__getitem__`` only, and every field collates, so ``torch.utils.data.DataLoader(dataset,
    batch_size=...)`` or a JAX/TF input pipeline takes it as is (clean and noise stems differ
    in kind between rows: batch those with your own collate). ``cache_dir`` keeps decoded sources on disk (shared by workers).
    """

    def __init__(self, manifest: Manifest, split: str | None = None, *, stems: bool = False,
                 cache_dir: Path | None = None):
        self.rows = (manifest.mixtures if split is None else manifest.split_rows(split)).to_dict("records")
        self.sample_rate = manifest.sample_rate
        self.vocabulary = manifest.tags
        self._tag_index = {tag: i for i, tag in enumerate(self.vocabulary)}
        self.stems = stems
        self.mixer = Mixer(manifest, cache_dir=cache_dir)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict:
        row = self.rows[index]
        mixed = self.mixer.mixed(row)  # stems and mixture from one pass of the kernel
        item = {"audio": mixed.mixture, "sample_rate": self.sample_rate, "mixture_id": row[S.MIXTURE_ID],
                "split": row[S.SPLIT], "tags": ";".join(row[S.TAGS]), "labels": self._labels(row[S.TAGS]),
                "snr_db": float(row[S.SNR_DB]),
                "noise_category": row[S.NOISE_CATEGORY]}
        if self.stems:
            item["clean"], item["noise"] = mixed.clean, mixed.noise
        return item

    def _labels(self, tags) -> np.ndarray:
        labels = np.zeros(len(self.vocabulary), dtype=np.float32)
        labels[[self._tag_index[tag] for tag in tags]] = 1.0  # tags outside the vocabulary are refused on load
        return labels

    def __repr__(self) -> str:
        seconds = sum(row[S.NUM_FRAMES] for row in self.rows) / self.sample_rate
        return f"MixtureDataset({len(self)} mixtures, {seconds / 3600:.2f} h at {self.sample_rate} Hz)"
