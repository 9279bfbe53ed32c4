"""MUSAN (Snyder, Chen and Povey, 2015) as noise: music, speech and environmental noise.

Layout, as published: ``ROOT/{music,noise,speech}/<subset>/*.wav`` (16 kHz) with an
``ANNOTATIONS`` file per subset whose lines start with the file id:

* music: ``<id> <genre(s)> <vocals Y/N> <artist> <composer>``: group = artist, so one
  artist's pieces never straddle splits;
* speech: ``<id> <speaker id or language> ...``: group = speaker for LibriVox (its second
  field is a speaker), else the recording itself;
* noise: ``<id> <url> ...``: group = the recording.

Folder ``noise`` maps to the category ``environmental``; ``speech`` and ``music`` keep their
names. The subset (e.g. ``free-sound``) becomes the subcategory. Splits are left to the
build's group-wise assignment (MUSAN has no official split).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import NoisemixError
from .base import PARTIAL_COPY, Adapter, Listing, present_files, require_file

__all__ = ["ADAPTER", "CATEGORY_OF_FOLDER"]

CATEGORY_OF_FOLDER = {"music": "music", "noise": "environmental", "speech": "speech"}
SPEAKER_SUBSETS = ("librivox",)   # subsets whose second annotation field is a speaker id
LAYOUT = "ROOT/{music,noise,speech}/<subset>/<id>.wav with ROOT/<folder>/<subset>/ANNOTATIONS"


def _listing(folder: Path, options: dict) -> Listing:
    found = [name for name in CATEGORY_OF_FOLDER if (folder / name).is_dir()]
    if not found:
        raise NoisemixError(f"{folder}: no music/, noise/ or speech/ folder; MUSAN expects {LAYOUT}")
    notes = []
    absent = [name for name in CATEGORY_OF_FOLDER if name not in found]
    if absent and not options["allow_partial"]:
        raise NoisemixError(f"{folder}: MUSAN folder(s) {', '.join(absent)} missing; complete the copy or set "
                            "allow_partial = true for musan (results are then not comparable)")
    if absent:
        notes.append(PARTIAL_COPY + f"musan: folder(s) {', '.join(absent)} missing under {folder}")
    meta = {}
    for name in found:
        subsets = sorted(p.name for p in (folder / name).iterdir() if p.is_dir())
        if not subsets:
            raise NoisemixError(f"{folder / name}: no subset folders; MUSAN expects {LAYOUT}")
        for subset in subsets:
            entries, subset_notes = _subset(folder, name, subset, options["allow_partial"])
            notes += subset_notes
            meta.update(entries)
    return Listing(meta, notes)


def _subset(folder: Path, name: str, subset: str, allow_partial: bool) -> tuple[dict[str, dict], list[str]]:
    base = f"{name}/{subset}"
    annotations = _annotations(require_file(folder / base / "ANNOTATIONS", "musan", LAYOUT))
    expected = [f"{base}/{file_id}.wav" for file_id in annotations]
    present, notes = present_files(folder, expected, "musan", allow_partial)
    listed = set(expected)
    extra = sorted(f"{base}/{p.name}" for p in (folder / base).glob("*.wav") if f"{base}/{p.name}" not in listed)
    if extra:
        notes.append(f"musan: {len(extra)} file(s) in {base} not in its ANNOTATIONS (each is its own group), e.g. {extra[0]}")
    entries = {}
    for rel in present + extra:
        fields = annotations.get(Path(rel).stem, [])
        entries[rel] = {"category": CATEGORY_OF_FOLDER[name], "subcategory": subset,
                        "group": "musan/" + _group(name, subset, Path(rel).stem, fields)}
    return entries, notes


def _annotations(path: Path) -> dict[str, list[str]]:
    """File id -> the remaining whitespace-separated fields of its line."""
    table = {}
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if fields[0] in table:
            raise NoisemixError(f"{path}:{number}: file id {fields[0]} listed twice")
        table[fields[0]] = fields[1:]
    if not table:
        raise NoisemixError(f"{path}: empty; MUSAN's ANNOTATIONS list one file id per line")
    return table


def _group(name: str, subset: str, file_id: str, fields: list[str]) -> str:
    if name == "music" and len(fields) >= 3:
        return f"music/artist/{fields[2]}"
    if name == "speech" and subset in SPEAKER_SUBSETS and fields:
        return f"speech/{subset}/speaker/{fields[0]}"
    return f"{name}/{subset}/recording/{file_id}"


ADAPTER = Adapter(
    name="musan", role="noise", title="MUSAN: music, speech and noise (Snyder et al., 2015)",
    licence="mixed Creative Commons and public-domain licences per file, listed in MUSAN's LICENSE and ANNOTATIONS "
            "(https://www.openslr.org/17/)",
    layout=LAYOUT, defaults={"allow_partial": False}, lister=_listing,
)
