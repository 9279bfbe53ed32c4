"""What a user watches while a stage trains: a bar per stage that stays on screen."""

from __future__ import annotations

import sys

__all__ = ["StageBar"]

NAMES = {1: "stage 1 (FE + LP)", 2: "stage 2 (DC, FE frozen)", 3: "stage 3"}


class StageBar:
    """A tqdm bar on stderr with the latest losses, λ and DC accuracy as its postfix."""

    def __init__(self, stage: int, total: int, done: int, enabled: bool):
        from tqdm import tqdm

        self.stage = stage
        self.bar = tqdm(total=total, initial=done, desc=NAMES[stage], unit="step", leave=True, disable=not enabled,
                        dynamic_ncols=True)

    def update(self) -> None:
        self.bar.update(1)

    def show(self, row: dict) -> None:
        shown = {"loss": row.get("loss"), "lp": row.get("loss_lp"), "dc": row.get("loss_dc"),
                 "λ": row.get("lambda"), "acc src": row.get("dc_acc_source"), "acc trg": row.get("dc_acc_target")}
        self.bar.set_postfix({k: f"{v:.3f}" for k, v in shown.items() if v is not None}, refresh=False)

    def abandon(self) -> None:
        """End the bar's line where it stands (an error interrupts the stage)."""
        self.bar.close()

    def close(self, progress, stopped_early: bool) -> None:
        if stopped_early and not self.bar.disable:
            self.bar.write(f"stage {self.stage}: stopped early after {progress.step} steps "
                           f"({progress.selection.stale} validations without gain)", file=sys.stderr)
        self.bar.close()
