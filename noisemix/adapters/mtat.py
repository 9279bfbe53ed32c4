"""MagnaTagATune (Law et al., ISMIR 2009) with the Pons et al. split (``pons2017``).

Layout, as the dataset is published: ``ROOT/annotations_final.csv`` (tab-separated,
quoted: ``clip_id``, 188 tag columns of 0/1, ``mp3_path``) beside the audio folders
``ROOT/0`` ... ``ROOT/f``. Paths are stored exactly as ``mp3_path`` gives them, so every
lab's copy yields the same source ids.

The ``pons2017`` split (Pons et al., ISMIR 2018; CLMR's default): folders 0-9, a, b are
train minus three clips whose audio is corrupt, c is valid, d-f are test. Tags are the
top-50 columns, in the order of the split's released label vectors (:data:`TOP50`).

Run ``python -m noisemix.adapters.mtat make-split-table --shared DIR --out FILE`` to
regenerate the committed split table from the public index (see ``manifests/mtat-pons2017``).
"""

from __future__ import annotations

import argparse
import ast
import re
from pathlib import Path

import pandas as pd

from ..errors import NoisemixError
from ..io import read_text_table
from .base import Adapter, Listing, corpus_file, partial_copy, present_files, require_file

__all__ = ["ADAPTER", "TOP50", "CORRUPT_CLIP_IDS", "EXPECTED_COUNTS", "pons2017_split", "read_annotations"]

TOP50 = (
    "guitar", "classical", "slow", "techno", "strings", "drums", "electronic", "rock", "fast", "piano",
    "ambient", "beat", "violin", "vocal", "synth", "female", "indian", "opera", "male", "singing",
    "vocals", "no vocals", "harpsichord", "loud", "quiet", "flute", "woman", "male vocal", "no vocal", "pop",
    "soft", "sitar", "solo", "man", "classic", "choir", "voice", "new age", "dance", "male voice",
    "female vocal", "beats", "harp", "cello", "no voice", "weird", "country", "metal", "female voice", "choral",
)
CORRUPT_CLIP_IDS = (35644, 55753, 57881)   # empty or undecodable mp3s in every public copy
EXPECTED_COUNTS = {"train": 18706, "valid": 1825, "test": 5329}
TOTAL_CLIPS = 25863
ANNOTATIONS = "annotations_final.csv"
LAYOUT = "ROOT/annotations_final.csv beside the audio folders ROOT/0 ... ROOT/f (*.mp3)"
_FOLDER_SPLIT = {**{f: "train" for f in "0123456789ab"}, "c": "valid", **{f: "test" for f in "def"}}
_SEGMENT_SUFFIX = re.compile(r"-\d+-\d+\.mp3$")


def pons2017_split(mp3_path: str) -> str:
    """The split of a clip from its top folder; '' for a path outside 0-f."""
    return _FOLDER_SPLIT.get(mp3_path.split("/", 1)[0], "") if "/" in mp3_path else ""


def read_annotations(path: Path) -> pd.DataFrame:
    """``clip_id`` (int), ``mp3_path`` and ``tags`` (top-50 tags in :data:`TOP50` order)."""
    table = read_text_table(path, sep="\t", hint=f"; expected the tab-separated {ANNOTATIONS} of MagnaTagATune")
    missing = [c for c in ("clip_id", "mp3_path", *TOP50) if c not in table.columns]
    if missing:
        raise NoisemixError(f"{path}: missing column(s) {', '.join(repr(c) for c in missing[:5])}"
                            f"{' ...' if len(missing) > 5 else ''}; is this MagnaTagATune's {ANNOTATIONS}?")
    try:
        clip_ids = table["clip_id"].astype(int)
        flags = table[list(TOP50)].astype(int).to_numpy() > 0
    except ValueError:
        raise NoisemixError(f"{path}: clip_id and tag columns must be integers (0/1)") from None
    tags = [[TOP50[j] for j in row.nonzero()[0]] for row in flags]
    return pd.DataFrame({"clip_id": clip_ids, "mp3_path": table["mp3_path"].str.strip(), "tags": tags})


def song_group(mp3_path: str) -> str:
    """Clips of one song share a group (they never straddle pons2017 folders)."""
    return "mtat/" + _SEGMENT_SUFFIX.sub("", mp3_path.split("/", 1)[-1])


def _check(options: dict) -> None:
    if options["split"] != "pons2017":
        raise NoisemixError(f"mtat option split={options['split']!r}: only 'pons2017' is defined")
    if options["untagged"] not in ("keep", "drop"):
        raise NoisemixError(f"mtat option untagged={options['untagged']!r}: choose keep or drop")


def _listing(folder: Path, options: dict) -> Listing:
    path = corpus_file(folder, options["annotations"] or ANNOTATIONS)
    table = read_annotations(require_file(path, "mtat", LAYOUT))
    table = table[table["mp3_path"] != ""]
    notes = []
    corrupt = table["clip_id"].isin(CORRUPT_CLIP_IDS)
    table = table.assign(split=table["mp3_path"].map(pons2017_split))[~corrupt]
    outside = table[table["split"] == ""]
    if len(outside):
        raise NoisemixError(f"{path}: mp3_path {outside['mp3_path'].iloc[0]!r} is not under a folder 0-f; {LAYOUT}")
    notes += _count_notes(table, path, options["allow_partial"])
    if options["untagged"] == "drop":
        untagged = table["tags"].map(len) == 0
        notes.append(f"mtat: dropped {int(untagged.sum())} clip(s) without any top-50 tag (untagged = drop)")
        table = table[~untagged]
    present, partial = present_files(folder, table["mp3_path"].tolist(), "mtat", options["allow_partial"])
    rows = table.set_index("mp3_path")
    meta = {rel: {"tags": list(rows.at[rel, "tags"]), "group": song_group(rel), "split": rows.at[rel, "split"]}
            for rel in present}
    return Listing(meta, notes + partial)


def _count_notes(table: pd.DataFrame, path: Path, allow_partial: bool) -> list[str]:
    """Compare clips per split with the published split; a short index is a partial copy."""
    counts = table["split"].value_counts()
    found = {s: int(counts.get(s, 0)) for s in EXPECTED_COUNTS}
    if found == EXPECTED_COUNTS:
        return []
    text = (f"mtat: {path} lists {' / '.join(f'{found[s]:,} {s}' for s in found)} clip(s) (after removing the known-corrupt "
            f"ids {', '.join(map(str, CORRUPT_CLIP_IDS))}); pons2017 has "
            f"{' / '.join(f'{n:,}' for n in EXPECTED_COUNTS.values())}")
    return partial_copy(text, allow_partial, f"use the dataset's complete {ANNOTATIONS}, or set allow_partial = true for mtat")


ADAPTER = Adapter(
    name="mtat", role="clean", title="MagnaTagATune (pons2017 split, top-50 tags)",
    licence="CC BY-NC-SA 3.0 (Law et al., ISMIR 2009; https://mirg.city.ac.uk/codeapps/the-magnatagatune-dataset)",
    layout=LAYOUT,
    defaults={"split": "pons2017", "untagged": "keep", "allow_partial": False, "annotations": ""},
    lister=_listing, vocabulary=TOP50, check=_check,
)


# --- the committed split table ------------------------------------------------------

def split_table(shared: Path) -> pd.DataFrame:
    """clip_id, path, split and the released top-50 labels (valid/test) from the public index.

    Train labels are not in the shared data; they come from the user's annotations_final.csv.
    """
    shared = Path(shared)
    labels = [t.strip() for t in ast.literal_eval((shared / "output_labels_mtt.txt").read_text().split("=", 1)[1].strip())]
    if tuple(labels) != TOP50:
        raise NoisemixError(f"{shared}/output_labels_mtt.txt: tag order differs from noisemix's TOP50")
    index = pd.read_csv(shared / "index_mtt.tsv", sep="\t", header=None, names=["clip_id", "path"], dtype={"clip_id": int, "path": str})
    index["split"] = index["path"].map(pons2017_split)
    index = index[~index["clip_id"].isin(CORRUPT_CLIP_IDS)].copy()
    index["tags"], index["label_source"] = "", ""
    for name, split in (("val_gt_mtt.tsv", "valid"), ("test_gt_mtt.tsv", "test")):
        gt = _ground_truth(shared / name)
        chosen = index["clip_id"].isin(gt)
        if (index.loc[chosen, "split"] != split).any() or chosen.sum() != len(gt):
            raise NoisemixError(f"{shared / name}: clips do not match folder rule for split {split}")
        index.loc[chosen, "tags"] = index.loc[chosen, "clip_id"].map(lambda c: ";".join(gt[c]))
        index.loc[chosen, "label_source"] = name
    counts = index["split"].value_counts().to_dict()
    if {s: counts.get(s, 0) for s in EXPECTED_COUNTS} != EXPECTED_COUNTS:
        raise NoisemixError(f"{shared}: split counts {counts} differ from {EXPECTED_COUNTS}")
    order = {s: i for i, s in enumerate(("train", "valid", "test"))}
    index = index.sort_values(["split", "clip_id"], key=lambda c: c.map(order) if c.name == "split" else c)
    return index[["clip_id", "path", "split", "tags", "label_source"]].reset_index(drop=True)


def _ground_truth(path: Path) -> dict[int, list[str]]:
    table = pd.read_csv(path, sep="\t", header=None, names=["clip_id", "vector"])
    truth = {}
    for clip_id, vector in zip(table["clip_id"], table["vector"]):
        values = ast.literal_eval(vector)
        truth[int(clip_id)] = [TOP50[j] for j, v in enumerate(values) if v > 0.5]
    return truth


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m noisemix.adapters.mtat")
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("make-split-table", help="write the pons2017 split table (CSV) from the public index")
    make.add_argument("--shared", type=Path, required=True, help="folder with index_mtt.tsv, val/test_gt_mtt.tsv, output_labels_mtt.txt")
    make.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    from ..io import write_text

    table = split_table(args.shared)
    write_text(table.to_csv(index=False, lineterminator="\n"), args.out)
    print(f"{len(table)} clips -> {args.out}")


if __name__ == "__main__":
    main()
