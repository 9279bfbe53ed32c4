"""From a noisemix manifest to torch data: the two training domains and the eval sets.

* source: labelled clean rows of the train split (plus the labelled noisy rows for the
  ``multicondition`` method);
* target: noisy train rows. Its table is built without the tags column, so the target
  loader cannot read labels even by mistake;
* valid / test: every row of the split, clean and noisy, with labels.

Audio comes from :class:`noisemix.Mixer` (mixed on the fly from the manifest's offsets
and gains, sources decoded once into a memory-mapped cache at the model's sample rate)
or from files written by ``noisemix render``. Training crops are random windows whose
start is a pure function of (seed, domain, epoch, mixture id), so they do not depend on
worker count or order; evaluation cuts each clip into non-overlapping model inputs.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from noisemix import Mixer, clean_reference_scale, decoded_dir, load_renders, rendered_files, stable_key
from noisemix import schema as S

from .config import RunConfig
from .errors import DatError

__all__ = [
    "SOURCE_DOMAIN", "TARGET_DOMAIN", "domain_classes", "TrainingData", "EvalSet", "prepare_training_data",
    "labelled_rows", "check_manifest", "make_audio", "ClipDataset", "ChunkDataset", "EpochSampler", "DomainStream",
    "multi_hot", "pad_to", "rows_digest",
]

# Domain labels of the DC: labelled clean music is the source, noisy music the target.
SOURCE_DOMAIN = 0
TARGET_DOMAIN = 1


def domain_classes(dc_mode: str) -> int:
    """Number of DC classes: clean vs noisy, or clean plus one class per noise category."""
    return 2 if dc_mode == "binary" else 1 + len(S.CATEGORIES)


def _category_class(category: str) -> int:
    return SOURCE_DOMAIN if category == "" else 1 + S.CATEGORIES.index(category)


def crop_start(seed: int, domain: str, epoch: int, mixture_id: str, total: int, length: int) -> int:
    """Start of a random training crop, drawn from (seed, domain, epoch, mixture id) only."""
    if total <= length:
        return 0
    rng = np.random.default_rng([seed & 0xFFFFFFFF, stable_key(domain), epoch, stable_key(mixture_id)])
    return int(rng.integers(0, total - length + 1))


def pad_to(audio: np.ndarray, length: int) -> np.ndarray:
    """Zero-pad ``audio`` at the end up to ``length`` samples (unchanged when long enough)."""
    if audio.size >= length:
        return audio
    return np.concatenate([audio, np.zeros(length - audio.size, dtype=np.float32)])


def multi_hot(tag_lists, vocabulary: list[str], where: str) -> np.ndarray:
    """``(N, T)`` float32 targets from per-row tag lists, in the vocabulary's order."""
    index = {tag: i for i, tag in enumerate(vocabulary)}
    out = np.zeros((len(tag_lists), len(vocabulary)), dtype=np.float32)
    for r, tags in enumerate(tag_lists):
        for tag in tags:
            if tag not in index:
                raise DatError(f"{where}: tag {tag!r} is not in the manifest's tag vocabulary")
            out[r, index[tag]] = 1.0
    return out


# --- manifest checks --------------------------------------------------------------

# The columns that decide what a clean row feeds the model (its samples and its targets).
_CLEAN_ROW_COLUMNS = (S.MIXTURE_ID, S.CLEAN_SOURCE_ID, S.CLEAN_OFFSET, S.NUM_FRAMES, S.CLEAN_GAIN, S.TAGS)


def rows_digest(manifest, tables: list[pd.DataFrame]) -> str:
    """sha256 over the given clean rows and their sources' hashes: equal digests, equal stage-1 inputs."""
    import hashlib

    digest = hashlib.sha256()
    for rows in tables:
        for values in rows[list(_CLEAN_ROW_COLUMNS)].itertuples(index=False):
            text = "\x1f".join(map(str, values)) + "\x1f" + manifest.source_sha256(values[1])
            digest.update(text.encode() + b"\n")
        digest.update(b"\x1e")
    return digest.hexdigest()


def check_manifest(manifest, config: RunConfig) -> list[str]:
    """The manifest's tag vocabulary, after checking it can train / evaluate this model."""
    if manifest.sample_rate != config.model.sample_rate:
        raise DatError(f"manifest {manifest.directory}: sample rate {manifest.sample_rate} Hz, but the model "
                       f"expects {config.model.sample_rate} Hz (rebuild the manifest or set model.sample_rate)")
    tags = manifest.tags
    if not tags:
        raise DatError(f"manifest {manifest.directory} has no tag vocabulary: dat needs labelled clean music")
    return tags


def labelled_rows(manifest, split: str, clean_only: bool = False) -> pd.DataFrame:
    """Rows of ``split`` that carry labels; a clear error when there are none."""
    rows = manifest.split_rows(split)
    if clean_only:
        rows = rows[rows[S.NOISE_SOURCE_ID].map(S.is_clean_reference)]
    kind = "clean " if clean_only else ""
    if rows.empty:
        raise DatError(f"manifest {manifest.directory}: split {split!r} has no {kind}rows")
    if not rows[S.TAGS].map(len).any():
        raise DatError(f"manifest {manifest.directory}: the {kind}rows of split {split!r} carry no tags "
                       "(labels are needed here)")
    return rows.reset_index(drop=True)


def target_rows(manifest, split: str = "train") -> pd.DataFrame:
    """Noisy rows of ``split`` without their tags column: the target domain is unlabelled."""
    rows = manifest.split_rows(split)
    rows = rows[~rows[S.NOISE_SOURCE_ID].map(S.is_clean_reference)]
    if rows.empty:
        raise DatError(f"manifest {manifest.directory}: split {split!r} has no noisy rows for the target domain")
    return rows.drop(columns=[S.TAGS]).reset_index(drop=True)


# --- audio ------------------------------------------------------------------------

class RenderedAudio:
    """Windows of mixtures written by ``noisemix render`` (the ``mixture`` stem), and of their
    clean music from the ``clean`` stems of a ``--stems`` render."""

    def __init__(self, manifest, render_dir: Path):
        self.render_dir = render_dir = Path(render_dir)
        try:
            table = load_renders(render_dir, manifest)  # sharded renders included; stale ones refused
        except S.ManifestError as exc:
            raise DatError(str(exc)) from None  # names the folder and what to run
        self.paths = {stem: {m: render_dir / p for m, p in files.items()} for stem, files in rendered_files(table).items()}
        self.sample_rate = manifest.sample_rate
        self.level = manifest.spec.get("level", "as-mixed")

    def window(self, row, start: int, length: int) -> np.ndarray:
        return self._read(S.STEM_MIXTURE, row, start, length)

    def clean_window(self, row, start: int, length: int) -> np.ndarray:
        """The clean music of the same window at its clip's level, from the row's clean stem
        (16-bit, as rendered): what :meth:`MixedAudio.clean_window` mixes on the fly."""
        if S.is_clean_reference(row[S.NOISE_SOURCE_ID]):
            return self.window(row, start, length)  # a clean row's mixture is its clean music
        scale = np.float32(clean_reference_scale(row, self.level))
        return np.multiply(self._read(S.STEM_CLEAN, row, start, length), scale, dtype=np.float32)

    def _read(self, stem: str, row, start: int, length: int) -> np.ndarray:
        import soundfile as sf

        path = self.paths.get(stem, {}).get(row[S.MIXTURE_ID])
        if path is None:
            hint = "" if stem == S.STEM_MIXTURE else f" (render {self.render_dir} with --stems for the clean crops)"
            raise DatError(f"mixture {row[S.MIXTURE_ID]}: no rendered {stem} file{hint}")
        data, rate = sf.read(str(path), start=start, frames=length, dtype="float32", always_2d=True)
        if rate != self.sample_rate:
            raise DatError(f"{path}: {rate} Hz, the manifest says {self.sample_rate} Hz")
        return np.ascontiguousarray(data.mean(axis=1, dtype=np.float32))


class MixedAudio:
    """Windows of mixtures mixed on the fly by noisemix (identical to rendered audio)."""

    def __init__(self, manifest, cache_dir: Path):
        self.manifest, self.cache_dir = manifest, cache_dir
        self.mixer = Mixer(manifest, cache_dir=cache_dir)

    def window(self, row, start: int, length: int) -> np.ndarray:
        return self.mixer.mix(row, start=start, length=length)

    def clean_window(self, row, start: int, length: int) -> np.ndarray:
        """The clean music of the same window, at its clip's level (a teacher's input)."""
        return self.mixer.clean_reference(row, start, length)

    def warm(self, rows: pd.DataFrame, progress: bool) -> None:
        """Decode every source the rows use into the on-disk cache, once, before loaders start."""
        from tqdm import tqdm

        ids = (set(rows[S.CLEAN_SOURCE_ID]) | (set(rows[S.NOISE_SOURCE_ID]) - {""})
               | {i for ids in rows[S.NOISE_NEXT_IDS] for i in ids})
        warm = Mixer(self.manifest, cache_dir=self.cache_dir, memory_mb=0)
        if progress:  # it grows with every corpus: say where (noisemix cache info / clear / $NOISEMIX_CACHE_MAX_GB)
            tqdm.write(f"decoded audio cache: {self.cache_dir} (size and limit: noisemix cache info)", file=sys.stderr)
        for source_id in tqdm(sorted(ids), desc="decode cache", disable=not progress, leave=False):
            warm.source(source_id)


def make_audio(manifest, config: RunConfig, cache_dir: Path | None = None):
    """Rendered files, or noisemix mixing with decoded sources kept in ``cache_dir``
    (default: noisemix's shared cache, so every run and evaluation decodes a source once)."""
    if config.data.audio == "rendered":
        return RenderedAudio(manifest, Path(config.data.render_dir))
    return MixedAudio(manifest, Path(cache_dir) if cache_dir else decoded_dir())


# --- datasets ---------------------------------------------------------------------

class ClipDataset(Dataset):
    """Training crops of manifest rows. Items are indexed by ``(row, epoch)`` pairs.

    ``vocabulary`` None means an unlabelled domain: items carry no ``labels`` and the
    rows table must not have a tags column. ``with_clean`` adds ``clean_audio``, the clean
    music of the same window at its clip's level (a label-free target for a teacher).
    """

    def __init__(self, rows: pd.DataFrame, audio, input_length: int, domain: str, seed: int,
                 vocabulary: list[str] | None, dc_mode: str = "binary", with_clean: bool = False):
        self.rows = rows
        self.audio = audio
        self.with_clean = with_clean
        self.input_length = input_length
        self.domain = domain
        self.seed = seed
        self.labels = None
        if vocabulary is not None:
            self.labels = multi_hot(list(rows[S.TAGS]), vocabulary, f"{domain} rows")
        elif S.TAGS in rows.columns:
            raise ValueError("an unlabelled dataset must be built without the tags column")
        clean = rows[S.NOISE_SOURCE_ID].map(S.is_clean_reference).to_numpy(dtype=bool)
        if dc_mode == "category":
            self.domains = rows[S.NOISE_CATEGORY].map(_category_class).to_numpy(dtype=np.int64)
        else:
            self.domains = np.where(clean, SOURCE_DOMAIN, TARGET_DOMAIN).astype(np.int64)
        self.short = int((rows[S.NUM_FRAMES] < input_length).sum())

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, key):
        index, epoch = key
        row = self.rows.iloc[index]
        total = int(row[S.NUM_FRAMES])
        length = min(total, self.input_length)
        start = crop_start(self.seed, self.domain, epoch, row[S.MIXTURE_ID], total, length)
        audio = pad_to(self.audio.window(row, start, length), self.input_length)
        item = {"audio": torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)),
                "domain": int(self.domains[index]), "mixture_id": row[S.MIXTURE_ID]}
        if self.labels is not None:
            item["labels"] = torch.from_numpy(self.labels[index])
        if self.with_clean:  # the clean music of the very same window: labels-free targets for a teacher
            clean = pad_to(self.audio.clean_window(row, start, length), self.input_length)
            item["clean_audio"] = torch.from_numpy(np.ascontiguousarray(clean, dtype=np.float32))
        return item


class ChunkDataset(Dataset):
    """Non-overlapping model inputs of whole clips, for clip-level evaluation.

    Item ``k`` is chunk ``j`` of row ``i``; a clip shorter than one input is zero-padded.
    """

    def __init__(self, rows: pd.DataFrame, audio, input_length: int):
        self.rows = rows
        self.audio = audio
        self.input_length = input_length
        counts = np.maximum(rows[S.NUM_FRAMES].to_numpy() // input_length, 1)
        self.row_of = np.repeat(np.arange(len(rows)), counts)
        self.chunk_of = np.concatenate([np.arange(c) for c in counts]) if len(counts) else np.zeros(0, int)
        self.short = int((rows[S.NUM_FRAMES] < input_length).sum())

    def __len__(self) -> int:
        return len(self.row_of)

    def __getitem__(self, k: int):
        row = self.rows.iloc[int(self.row_of[k])]
        total = int(row[S.NUM_FRAMES])
        start = int(self.chunk_of[k]) * self.input_length
        audio = self.audio.window(row, start, min(self.input_length, total - start))
        return {"audio": torch.from_numpy(pad_to(np.ascontiguousarray(audio, dtype=np.float32), self.input_length)),
                "row": int(self.row_of[k])}


# --- sampling ---------------------------------------------------------------------

class EpochSampler(Sampler):
    """Yields ``(row, epoch)`` for one epoch of a domain, from batch ``start_batch`` on.

    Wraps :class:`DistributedSampler` (one replica when not distributed) so the order is
    a function of (seed, epoch) and each rank sees its own shard.
    """

    def __init__(self, size: int, batch_size: int, seed: int, rank: int = 0, world: int = 1):
        self.inner = DistributedSampler(range(size), num_replicas=world, rank=rank, shuffle=True, seed=seed,
                                        drop_last=True)
        self.batch_size = batch_size
        self.epoch = 0
        self.start_batch = 0

    def set_position(self, epoch: int, start_batch: int) -> None:
        self.epoch, self.start_batch = epoch, start_batch
        self.inner.set_epoch(epoch)

    def batches_per_epoch(self) -> int:
        return len(self.inner) // self.batch_size

    def __iter__(self):
        order = list(self.inner)[self.start_batch * self.batch_size:]
        return iter([(i, self.epoch) for i in order])

    def __len__(self) -> int:
        return max(len(self.inner) - self.start_batch * self.batch_size, 0)


class DomainStream:
    """An endless iterator of batches of one domain; ``epoch`` and ``batch`` are its position.

    The position counts batches handed to the trainer (not those prefetched), so a
    resumed stream continues exactly after the last batch the saved model saw.
    """

    def __init__(self, dataset: ClipDataset, batch_size: int, seed: int, num_workers: int, rank: int = 0,
                 world: int = 1):
        self.sampler = EpochSampler(len(dataset), batch_size, seed, rank, world)
        if self.sampler.batches_per_epoch() < 1:
            raise DatError(f"{dataset.domain} domain: {len(dataset)} rows give no full batch of {batch_size} per "
                           f"process; lower data.batch_size")
        # An own generator: creating an iterator would otherwise draw from torch's global
        # RNG and shift the dropout stream whenever a resumed run recreates its loaders.
        self.loader = DataLoader(dataset, batch_size=batch_size, sampler=self.sampler, drop_last=True,
                                 num_workers=num_workers, persistent_workers=num_workers > 0,
                                 generator=torch.Generator().manual_seed(seed))
        self.epoch = 0
        self.batch = 0
        self._iterator = None

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "batch": self.batch}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.batch = int(state["epoch"]), int(state["batch"])
        self._iterator = None

    def __next__(self) -> dict:
        while True:
            if self._iterator is None:
                self.sampler.set_position(self.epoch, self.batch)
                self._iterator = iter(self.loader)
            try:
                item = next(self._iterator)
            except StopIteration:
                self.epoch, self.batch, self._iterator = self.epoch + 1, 0, None
                continue
            self.batch += 1
            return item


# --- putting it together ----------------------------------------------------------

@dataclass
class EvalSet:
    """Rows of a split cut into model inputs, with their targets."""

    chunks: ChunkDataset
    labels: np.ndarray

    @property
    def rows(self) -> pd.DataFrame:
        return self.chunks.rows


@dataclass
class TrainingData:
    """What a method trains on. ``target`` is unlabelled and built without the tags column;
    ``noisy_labelled`` (multicondition only) is the same rows *with* their tags, cropped
    exactly as the target is, so multicondition sees the same noisy audio as DAT."""

    tags: list[str]
    source: ClipDataset
    target: ClipDataset | None
    noisy_labelled: ClipDataset | None
    valid_clean: EvalSet
    valid_noisy: EvalSet | None


# Crops of the target domain and of multicondition's labelled noisy rows are drawn under this
# name, so both see the very same windows of the same mixtures.
NOISY_DOMAIN = "target"


def _eval_set(rows: pd.DataFrame, audio, length: int, tags: list[str], where: str) -> EvalSet:
    return EvalSet(ChunkDataset(rows, audio, length), multi_hot(list(rows[S.TAGS]), tags, where))


def labelled_pieces(manifest, share: float):
    """``rows -> bool mask``: the rows whose clean clip's piece (group) is among the labelled
    ``share`` of pieces. Which pieces is fixed by a hash of the group name (never the seed),
    so every run of an experiment reads the same labels; every excerpt of a piece goes one way."""
    if not 0.0 < share <= 1.0:
        raise DatError(f"data.labelled_share {share}: a share in (0, 1]")
    group = manifest.sources[S.GROUP]
    labelled = {g for g in set(group) if share >= 1.0 or stable_key("labelled", g) / 2.0 ** 64 < share}
    return lambda rows: rows[S.CLEAN_SOURCE_ID].map(group).isin(labelled).to_numpy()


def _target_pieces(manifest, rows: pd.DataFrame, labelled, config: RunConfig) -> pd.DataFrame:
    """The target domain's rows: of every train piece, or only of the labelled or unlabelled ones."""
    which = config.data.target_pieces
    if which == "all":
        return rows
    keep = labelled(rows) if which == "labelled" else ~labelled(rows)
    if not keep.any():
        raise DatError(f"manifest {manifest.directory}: no noisy train rows of {which} pieces "
                       f"(data.labelled_share {config.data.labelled_share})")
    return rows[keep].reset_index(drop=True)


def prepare_training_data(manifest, config: RunConfig, cache_dir: Path | None = None,
                          progress: bool = True) -> TrainingData:
    """Datasets for a method: labelled clean source, the noisy rows its stage 3 uses, and
    validation (clean rows select the model; noisy rows are only reported). Never test."""
    from .config import uses_target

    tags = check_manifest(manifest, config)
    labelled = labelled_pieces(manifest, config.data.labelled_share)
    source_rows = labelled_rows(manifest, "train", clean_only=True)
    source_rows = source_rows[labelled(source_rows)].reset_index(drop=True)
    if source_rows.empty:
        raise DatError(f"manifest {manifest.directory}: no labelled train piece at data.labelled_share "
                       f"{config.data.labelled_share}")
    noisy = uses_target(config.method)
    trg_rows = _target_pieces(manifest, target_rows(manifest, "train"), labelled, config) if noisy else None
    valid_rows = labelled_rows(manifest, "valid")
    clean_valid = valid_rows[valid_rows[S.NOISE_SOURCE_ID].map(S.is_clean_reference)].reset_index(drop=True)
    if clean_valid.empty:
        raise DatError(f"manifest {manifest.directory}: split 'valid' has no clean rows; models are selected on "
                       "clean validation clips (build with clean references)")
    noisy_valid = valid_rows[~valid_rows[S.NOISE_SOURCE_ID].map(S.is_clean_reference)].reset_index(drop=True)
    audio = make_audio(manifest, config, cache_dir)
    if isinstance(audio, MixedAudio):
        audio.warm(pd.concat([source_rows, valid_rows] + ([trg_rows] if noisy else [])), progress)
    length, seed, mode = config.model.input_length, config.seed, config.model.dc_mode
    source = ClipDataset(source_rows, audio, length, "source", seed, tags, mode)
    target = (ClipDataset(trg_rows, audio, length, NOISY_DOMAIN, seed, None, mode,
                          with_clean=config.method == "consistency") if noisy else None)
    labelled_noisy = None
    if config.method == "multicondition":
        rows = labelled_rows(manifest, "train")
        rows = rows[~rows[S.NOISE_SOURCE_ID].map(S.is_clean_reference) & labelled(rows)].reset_index(drop=True)
        labelled_noisy = ClipDataset(rows, audio, length, NOISY_DOMAIN, seed, tags, mode)
    data = TrainingData(tags, source, target, labelled_noisy, _eval_set(clean_valid, audio, length, tags, "valid rows"),
                        _eval_set(noisy_valid, audio, length, tags, "valid rows") if len(noisy_valid) else None)
    short = sum(d.short for d in (source, target, data.valid_clean.chunks) if d is not None)
    if short:
        print(f"note: {short} training/validation clip(s) are shorter than one model input "
              f"({length} samples) and are zero-padded", file=sys.stderr)
    return data
