"""ESC-50 (Piczak, ACM MM 2015): 2,000 five-second environmental clips in 50 classes, 5 folds.

Layout, as published (``ESC-50-master``): ``ROOT/meta/esc50.csv`` with header
``filename,fold,target,category,esc10,src_file,take`` and the clips in ``ROOT/audio/``.
Every clip is ``environmental`` noise; its class (``category`` column) becomes the
subcategory. Clips cut from one freesound recording share ``src_file`` and are the
group; the folds decide the split (by default folds 1-3 train, 4 valid, 5 test).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import NoisemixError
from ..io import read_text_table
from .base import Adapter, Listing, present_files, require_file

__all__ = ["ADAPTER", "COLUMNS", "FOLDS"]

COLUMNS = ("filename", "fold", "target", "category", "esc10", "src_file", "take")
FOLDS = (1, 2, 3, 4, 5)
LAYOUT = "ROOT/meta/esc50.csv and ROOT/audio/*.wav (the ESC-50-master folder)"


def _listing(folder: Path, options: dict) -> Listing:
    split_of = _fold_splits(options)
    path = require_file(folder / "meta" / "esc50.csv", "esc50", LAYOUT)
    table = read_text_table(path, sep=",")
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise NoisemixError(f"{path}: missing column(s) {', '.join(missing)}; expected the header {','.join(COLUMNS)}")
    try:
        folds = table["fold"].astype(int)
    except ValueError:
        raise NoisemixError(f"{path}: fold must be an integer 1-5") from None
    if not folds.isin(FOLDS).all():
        raise NoisemixError(f"{path}: fold {folds[~folds.isin(FOLDS)].iloc[0]} is not one of 1-5")
    notes = []
    used = folds.isin(list(split_of))
    if not used.all():
        notes.append(f"esc50: {int((~used).sum())} clip(s) in folds not assigned to a split were left out")
    table, folds = table[used], folds[used]
    rel = ("audio/" + table["filename"]).tolist()
    present, partial = present_files(folder, rel, "esc50", options["allow_partial"])
    rows = dict(zip(rel, zip(folds, table["category"], table["src_file"])))
    meta = {r: {"category": "environmental", "subcategory": rows[r][1], "group": f"esc50/{rows[r][2]}",
                "split": split_of[rows[r][0]]} for r in present}
    return Listing(meta, notes + partial)


def _fold_splits(options: dict) -> dict[int, str]:
    split_of = {}
    for split in ("train", "valid", "test"):
        for fold in options[f"{split}_folds"]:
            if fold not in FOLDS:
                raise NoisemixError(f"esc50 option {split}_folds: fold {fold} is not one of 1-5")
            if fold in split_of:
                raise NoisemixError(f"esc50: fold {fold} is in both {split_of[fold]}_folds and {split}_folds")
            split_of[fold] = split
    return split_of


ADAPTER = Adapter(
    name="esc50", role="noise", title="ESC-50 environmental sounds (Piczak, 2015)",
    licence="CC BY-NC 3.0 (clips from freesound.org; https://github.com/karolpiczak/ESC-50)",
    layout=LAYOUT,
    defaults={"train_folds": (1, 2, 3), "valid_folds": (4,), "test_folds": (5,), "allow_partial": False},
    lister=_listing, check=_fold_splits,
)
