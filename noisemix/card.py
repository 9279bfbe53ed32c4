"""Dataset cards: a README.md per manifest saying what it holds and how to rebuild and check it.

The card is a pure function of the manifest (no dates, no machine paths), so a
regenerated benchmark has a byte-identical card, and a diff of two cards shows what differs.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd

from . import schema as S
from .adapters import ADAPTERS
from .adapters.base import PARTIAL_COPY
from .io import write_text
from .manifest import Manifest, load_manifest
from .stats import count_table

__all__ = ["write_card", "card_text", "source_digests", "CARD_FILE"]

CARD_FILE = "README.md"
CARD_MARK = "; built by noisemix "  # in every card's first paragraph: how a card is told from another README


def write_card(directory: Path) -> Path:
    """Write ``directory/README.md`` from the manifest in ``directory``."""
    path = Path(directory) / CARD_FILE
    write_text(card_text(load_manifest(directory)), path)
    return path


def refresh_card(directory: Path) -> Path | None:
    """Rewrite a dataset card that a build left in ``directory`` (a rebuild must never keep
    describing the earlier build); a README.md that is not a noisemix card is left alone."""
    path = Path(directory) / CARD_FILE
    if path.is_file() and CARD_MARK in path.read_text(encoding="utf-8", errors="replace"):
        return write_card(directory)
    return None


def source_digests(sources: pd.DataFrame) -> dict[str, str]:
    """Two digests over all sources: of the file bytes, and of the decoded audio (survives re-encoding)."""
    rows = sources.sort_values([S.ROOT, S.PATH])
    files = "\n".join(f"{r}\t{p}\t{h}" for r, p, h in zip(rows[S.ROOT], rows[S.PATH], rows[S.SHA256]))
    audio = "\n".join(f"{r}\t{p}\t{h}" for r, p, h in zip(rows[S.ROOT], rows[S.PATH], rows[S.AUDIO_FINGERPRINT]))
    return {"source files (sha256)": hashlib.sha256(files.encode()).hexdigest(),
            "decoded audio": hashlib.sha256(audio.encode()).hexdigest()}


def card_text(manifest: Manifest) -> str:
    info = manifest.info
    recipe = info.get(S.INFO_RECIPE) or {}
    title = recipe.get("title") or "noisemix manifest"
    parts = [f"# {title}\n", _summary(manifest, recipe), _corpora(manifest), _design(info[S.INFO_SPEC]),
             _counts(manifest), _regenerate(manifest, recipe), _verify(manifest), _licences(manifest)]
    return "\n".join(p for p in parts if p)


def _summary(manifest: Manifest, recipe: dict) -> str:
    info = manifest.info
    description = (recipe.get("definition") or {}).get("description", "")
    lines = [description.strip() + "\n"] if description else []
    lines.append(f"{len(manifest.mixtures):,} mixtures of {_count(manifest, 'clean')} clean and "
                 f"{_count(manifest, 'noise')} noise recordings; built by noisemix {info[S.INFO_TOOL_VERSION]}, "
                 f"manifest schema {info[S.INFO_SCHEMA_VERSION]}, seed {manifest.seed}, "
                 f"resampler {info[S.INFO_RESAMPLER]}.")
    if recipe:
        lines.append(f"Recipe `{recipe['file']}` (`{recipe['name']}`, sha256 `{recipe['sha256']}`).")
        if any(recipe.get("corpus_options", {}).values()):
            lines.append(f"Adapter options given at build time (not in the recipe): `{recipe['corpus_options']}`.")
    partial = [n for n in info[S.INFO_REPORT]["notes"] if n.startswith(PARTIAL_COPY)]
    if partial:
        lines.append("\n**Built from a partial copy; not comparable with the full benchmark:**\n")
        lines += [f"- {n}" for n in partial]
    return "\n".join(lines) + "\n"


def _count(manifest: Manifest, role: str) -> str:
    return f"{int((manifest.sources[S.ROLE] == role).sum()):,}"


def _adapters(manifest: Manifest) -> dict[str, str]:
    """``root name -> adapter name`` of the roots an adapter read ('' where none)."""
    return {k: v.get("adapter", "") for k, v in manifest.info.get(S.INFO_CORPORA, {}).items()}


def _corpora(manifest: Manifest) -> str:
    adapters = _adapters(manifest)
    rows = []
    for (root, role), part in manifest.sources.groupby([S.ROOT, S.ROLE], sort=True):
        adapter = adapters.get(root, "")
        kind = ADAPTERS[adapter].title if adapter in ADAPTERS else "folder scan"
        splits = ", ".join(f"{s} {int((part[S.SPLIT] == s).sum()):,}" for s in S.SPLITS)
        rows.append([f"`{root}`", kind, role, f"{len(part):,}", splits])
    return "## Contents\n\n" + _table(["root", "corpus", "role", "files", "files per split"], rows)


def _design(spec: dict) -> str:
    segment = "whole clips" if spec["segment_frames"] is None else f"{spec['segment_frames']:,} samples"
    lines = ["## Design\n", f"- sample rate {spec['sample_rate']:,} Hz, segments of {segment}, "
             f"SNR defined by {spec['snr_definition']}, clipping guard {spec['clip_policy']}, "
             f"level {spec.get('level', 'as-mixed')}, "
             f"clean references {'included' if spec['clean_references'] else 'not included'}"]
    weights = spec.get("category_weights") or {}
    lines.append(f"- noise category weights: {', '.join(f'{k} {v:g}' for k, v in weights.items()) or 'equal'}")
    for split in S.SPLITS:
        own = (spec.get("splits") or {}).get(split, {})
        design, snr = own.get("design", spec["design"]), own.get("snr", spec["snr"])
        per = own.get("mixtures_per_segment", spec["mixtures_per_segment"])
        how = "every segment x category x SNR level" if design == "grid" else f"{per} random draw(s) per segment"
        lines.append(f"- {split}: {design} design, SNR {snr} dB, {how}")
    return "\n".join(lines) + "\n"


def _counts(manifest: Manifest) -> str:
    table = count_table(manifest)
    rows = [[r[S.SPLIT], r[S.NOISE_CATEGORY], r["snr_bin"], f"{r['mixtures']:,}"] for r in table.to_dict("records")]
    return "## Mixtures per split x category x SNR (dB)\n\n" + _table(["split", "category", "SNR", "mixtures"], rows)


def _directory(manifest: Manifest) -> str:
    """A name for the manifest directory that does not depend on where this copy was written."""
    return (manifest.info.get(S.INFO_RECIPE) or {}).get("name") or "MANIFEST_DIR"


def _root_flags(manifest: Manifest) -> str:
    return " ".join(f"--root {root}=/path/to/{root}" for root in sorted(manifest.sources[S.ROOT].unique()))


def _regenerate(manifest: Manifest, recipe: dict) -> str:
    roots = _root_flags(manifest)
    if recipe:
        command = f"noisemix build --recipe manifests/recipes/{recipe['file']} {roots} --out {_directory(manifest)}"
        note = "Same recipe + same corpus files give a byte-identical manifest on any machine and worker count."
    else:
        command = "noisemix build ... (the full spec is in manifest.json under \"spec\")"
        note = "This manifest was built without a recipe; rebuild with the options recorded in manifest.json."
    return f"## Regenerate\n\n```\n{command}\n```\n\n{note}\n"


def _verify(manifest: Manifest) -> str:
    fingerprints = manifest.fingerprints
    rows = [[name, f"`{value}`"] for name, value in sorted(fingerprints.items())]
    rows += [[name, f"`{value}`"] for name, value in source_digests(manifest.sources).items()]
    return ("## Verify\n\n```\nnoisemix verify " + _directory(manifest) + " " + _root_flags(manifest) + "\n```\n\n"
            "`verify` checks every source file against its sha256 in `sources.parquet`; a file whose bytes differ "
            "but whose decoded audio matches is reported as a harmless re-encoding, anything else as a different "
            "recording. A rebuilt manifest must show these fingerprints (`manifest.json` -> `fingerprints`):\n\n"
            + _table(["fingerprint", "sha256"], rows))


def _licences(manifest: Manifest) -> str:
    adapters = _adapters(manifest)
    rows = []
    for root in sorted(manifest.sources[S.ROOT].unique()):
        adapter = ADAPTERS.get(adapters.get(root, ""))
        rows.append([f"`{root}`", adapter.licence if adapter else "see the corpus's own licence"])
    return ("## Licences\n\nThe manifest holds no audio; each user brings their own copy of the corpora under "
            "their licences.\n\n" + _table(["root", "licence"], rows))


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"
