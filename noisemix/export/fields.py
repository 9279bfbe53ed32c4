"""What every export tells of a mixture beside its audio, and the renders an export may point at."""

from __future__ import annotations

from pathlib import Path

from .. import schema as S
from ..errors import NoisemixError
from ..manifest import Manifest
from ..render import load_renders, rendered_files

__all__ = ["row_fields", "complete_renders"]


def row_fields(row) -> dict:
    """What every export tells of a row beside its audio (JSON-ready: None where a clean row
    has no noise)."""
    noisy = not S.is_clean_reference(row[S.NOISE_SOURCE_ID])
    return {"split": row[S.SPLIT], "tags": list(row[S.TAGS]),
            "snr_db": float(row[S.SNR_DB]) if noisy and S.snr_is_defined(row[S.SNR_DB]) else None,
            "noise_category": row[S.NOISE_CATEGORY] or None, "noise_subcategory": row[S.NOISE_SUBCATEGORY] or None,
            "clean_source_id": row[S.CLEAN_SOURCE_ID], "noise_source_id": row[S.NOISE_SOURCE_ID] if noisy else None}


def complete_renders(manifest: Manifest, renders: Path) -> dict[str, dict[str, str]]:
    """``stem -> {mixture id: path in renders}`` of a render folder that holds every mixture of
    the manifest, current (stale renders and missing mixtures are refused in one line)."""
    files = rendered_files(load_renders(renders, manifest))
    missing = [mid for mid in manifest.mixtures[S.MIXTURE_ID] if mid not in files.get(S.STEM_MIXTURE, {})]
    if missing:
        raise NoisemixError(f"{renders}: {len(missing)} mixture(s) not rendered, e.g. {missing[0]}; "
                            "run noisemix render first")
    return files
