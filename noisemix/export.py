"""A manifest in the formats neighbouring tools read: Lhotse-style JSONL and a plain CSV.

Both are plain text written without the tools themselves (no lhotse dependency).

Lhotse mapping (one JSON object per line, one per mixture):

* a noisy row becomes a ``MixedCut``: ``id`` = ``mixture_id``; ``tracks[0]`` the clean
  segment, ``tracks[1]`` the noise segment with ``offset`` 0 and ``snr`` = ``snr_db``;
* a clean reference row becomes a ``MonoCut`` (the clean segment alone);
* each track's ``cut`` is a ``MonoCut`` whose ``start`` / ``duration`` are our
  ``clean_offset`` / ``noise_offset`` and ``num_frames`` in seconds (offsets are samples at
  the manifest's ``sample_rate``); its ``recording`` has ``id`` = ``source_id``,
  ``sources`` = ``[{type: file, channels: [0..], source: path}]`` (relative to the root,
  or absolute when the root's folder is given), the file's own ``sampling_rate``,
  ``num_samples`` and ``duration``;
* what Lhotse cannot say lives in ``custom``: ``split``, ``tags``, the root name, our exact
  linear gains (``gain``; Lhotse's ``snr`` is a whole-track energy ratio, the gains are
  what reproduces our audio), ``offset_samples`` (exact, where seconds round), ``looped`` (Lhotse does not loop), the transforms and
  the noise category.

CSV: one row per mixture with paths, offsets (samples and seconds), gains, SNR,
category, split and tags (``;``-joined).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from . import schema as S
from .errors import NoisemixError
from .io import write_text
from .manifest import Manifest, load_manifest

__all__ = ["export_manifest", "lhotse_lines", "csv_text", "FORMATS"]

FORMATS = ("lhotse", "csv")
# Manifest columns keep their names; the added columns are export-only.
CSV_COLUMNS = (S.MIXTURE_ID, S.SPLIT, S.SAMPLE_RATE, S.NUM_OUTPUT_FRAMES, "clean_root", "clean_path", S.CLEAN_OFFSET,
               "clean_offset_s", S.CLEAN_GAIN, "noise_root", "noise_path", S.NOISE_OFFSET, "noise_offset_s",
               S.NOISE_LOOPED, S.NOISE_GAIN, S.SNR_DB, S.NOISE_CATEGORY, S.NOISE_SUBCATEGORY, S.TAGS,
               S.NOISE_TRANSFORMS, S.MIXTURE_TRANSFORMS, "noise_next_paths")


def export_manifest(directory: Path, fmt: str, out: Path, roots: dict[str, Path] | None = None) -> int:
    """Write ``out`` in ``fmt``; returns the number of mixtures written."""
    if fmt not in FORMATS:
        raise NoisemixError(f"--format {fmt!r}: choose {' or '.join(FORMATS)}")
    manifest = load_manifest(directory)
    given = {k: Path(v).expanduser().resolve() for k, v in (roots or {}).items()}
    text = "".join(line + "\n" for line in lhotse_lines(manifest, given)) if fmt == "lhotse" else csv_text(manifest)
    write_text(text, out)
    return len(manifest.mixtures)


def _source_path(source, roots: dict[str, Path]) -> str:
    root = roots.get(source[S.ROOT])
    return str(root / source[S.PATH]) if root else source[S.PATH]


def _track_cut(manifest: Manifest, mixture, source_id: str, offset: int, gain: float, roots, extra: dict) -> dict:
    source = manifest.sources.loc[source_id]
    rate = manifest.sample_rate
    recording = {
        "id": source_id,
        "sources": [{"type": "file", "channels": list(range(int(source[S.CHANNELS]))),
                     "source": _source_path(source, roots)}],
        "sampling_rate": int(source[S.SOURCE_SAMPLE_RATE]), "num_samples": int(source[S.NUM_FRAMES]),
        "duration": float(source[S.DURATION_S]),
    }
    return {"id": f"{mixture[S.MIXTURE_ID]}-{extra['role']}", "start": offset / rate,
            "duration": int(mixture[S.NUM_OUTPUT_FRAMES]) / rate, "channel": 0, "recording": recording,
            "custom": {"root": source[S.ROOT], "gain": float(gain), "offset_samples": int(offset), **extra},
            "type": "MonoCut"}


def lhotse_lines(manifest: Manifest, roots: dict[str, Path] | None = None) -> list[str]:
    """One JSON text per mixture, in manifest order (see the module docstring for the mapping)."""
    lines = []
    for mixture in manifest.mixtures.to_dict("records"):
        common = {"split": mixture[S.SPLIT], "tags": list(mixture[S.TAGS]),
                  "mixture_transforms": json.loads(mixture[S.MIXTURE_TRANSFORMS])}
        clean = _track_cut(manifest, mixture, mixture[S.CLEAN_SOURCE_ID], int(mixture[S.CLEAN_OFFSET]),
                           mixture[S.CLEAN_GAIN], roots or {}, {"role": "clean"})
        if S.is_clean_reference(mixture[S.NOISE_SOURCE_ID]):
            cut = dict(clean, id=mixture[S.MIXTURE_ID], custom={**clean["custom"], **common})
        else:
            noise = _track_cut(manifest, mixture, mixture[S.NOISE_SOURCE_ID], int(mixture[S.NOISE_OFFSET]),
                               mixture[S.NOISE_GAIN], roots or {},
                               {"role": "noise", "category": mixture[S.NOISE_CATEGORY],
                                "subcategory": mixture[S.NOISE_SUBCATEGORY], "looped": bool(mixture[S.NOISE_LOOPED]),
                                # --noise-fill concat: recordings joined after this one (not a Lhotse notion)
                                "following": list(mixture[S.NOISE_NEXT_IDS]),
                                "transforms": json.loads(mixture[S.NOISE_TRANSFORMS])})
            cut = {"id": mixture[S.MIXTURE_ID], "type": "MixedCut",
                   "tracks": [{"cut": clean, "offset": 0.0}, {"cut": noise, "offset": 0.0, "snr": float(mixture[S.SNR_DB])}],
                   "custom": common}
        lines.append(json.dumps(cut, sort_keys=True, allow_nan=False))
    return lines


def csv_text(manifest: Manifest) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    rate = manifest.sample_rate
    sources = manifest.sources
    for m in manifest.mixtures.to_dict("records"):
        noisy = not S.is_clean_reference(m[S.NOISE_SOURCE_ID])
        noise = sources.loc[m[S.NOISE_SOURCE_ID]] if noisy else None
        clean = sources.loc[m[S.CLEAN_SOURCE_ID]]
        writer.writerow([
            m[S.MIXTURE_ID], m[S.SPLIT], m[S.SAMPLE_RATE], m[S.NUM_OUTPUT_FRAMES], clean[S.ROOT], clean[S.PATH],
            m[S.CLEAN_OFFSET], repr(m[S.CLEAN_OFFSET] / rate), repr(float(m[S.CLEAN_GAIN])),
            noise[S.ROOT] if noisy else "", noise[S.PATH] if noisy else "", m[S.NOISE_OFFSET] if noisy else "",
            repr(m[S.NOISE_OFFSET] / rate) if noisy else "", str(bool(m[S.NOISE_LOOPED])).lower() if noisy else "",
            repr(float(m[S.NOISE_GAIN])), repr(float(m[S.SNR_DB])) if S.snr_is_defined(m[S.SNR_DB]) else "",
            m[S.NOISE_CATEGORY], m[S.NOISE_SUBCATEGORY], ";".join(m[S.TAGS]),
            m[S.NOISE_TRANSFORMS], m[S.MIXTURE_TRANSFORMS],
            ";".join(f"{sources.loc[i, S.ROOT]}/{sources.loc[i, S.PATH]}" for i in m[S.NOISE_NEXT_IDS]),
        ])
    return buffer.getvalue()
