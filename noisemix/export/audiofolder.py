"""Rendered mixtures as a Hugging Face ``audiofolder``: one ``metadata.jsonl`` per split folder.

``noisemix render`` writes ``AUDIO/SPLIT/ID.flac``; beside them this writes
``AUDIO/SPLIT/metadata.jsonl``, one line per mixture, so that::

    from datasets import load_dataset
    ds = load_dataset("audiofolder", data_dir="AUDIO")   # splits train, validation, test

gives each mixture's audio with its tags (a list), SNR, noise category and source ids. Stems
(``--stems``) are not examples of their own: their files are named in the mixture's line as
``clean_stem`` / ``noise_stem`` (relative to the split folder; ``*_file_name`` columns would
make ``datasets`` load them, and a clean row has no noise stem to load).
"""

from __future__ import annotations

import json
from pathlib import Path

from .. import schema as S
from ..errors import NoisemixError
from ..io import write_text
from ..manifest import Manifest
from .fields import complete_renders, row_fields

__all__ = ["write_audiofolder_metadata", "METADATA_FILE"]

METADATA_FILE = "metadata.jsonl"


def write_audiofolder_metadata(manifest: Manifest, renders: Path) -> dict[str, int]:
    """Write ``renders/SPLIT/metadata.jsonl`` for every split; return rows per split."""
    renders = Path(renders)
    files = complete_renders(manifest, renders)
    rows = manifest.mixtures
    counts = {}
    for split, part in rows.groupby(S.SPLIT, sort=False):
        lines = [json.dumps(_metadata(row, {stem: paths.get(row[S.MIXTURE_ID]) for stem, paths in files.items()},
                                      split), allow_nan=False)
                 for row in part.to_dict("records")]
        write_text("".join(line + "\n" for line in lines), renders / split / METADATA_FILE)
        counts[split] = len(lines)
    return counts


def _metadata(row, paths, split: str) -> dict:
    def relative(path):  # to the split folder, where the metadata file is
        prefix = f"{split}/"
        if not path.startswith(prefix):
            raise NoisemixError(f"render {path}: not in the {split}/ folder of its split")
        return path[len(prefix):]

    record = {"file_name": relative(paths[S.STEM_MIXTURE]), "mixture_id": row[S.MIXTURE_ID], **row_fields(row)}
    for stem in (S.STEM_CLEAN, S.STEM_NOISE):
        if paths.get(stem):
            record[f"{stem}_stem"] = relative(paths[stem])
    return record
