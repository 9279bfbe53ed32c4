"""Per-step and per-evaluation logs: CSV files plus TensorBoard, resumable.

On resume, rows after the checkpoint's step are dropped (they will be written again),
so a log never holds two rows for one step.
"""

from __future__ import annotations

import csv
from pathlib import Path

from .io import atomic_path

__all__ = ["CsvLog", "RunLogger"]


class CsvLog:
    def __init__(self, path: Path, fields: list[str]):
        self.path, self.fields = Path(path), fields

    def truncate_after(self, global_step: int) -> None:
        if not self.path.is_file():
            return
        with open(self.path, newline="") as handle:
            rows = [r for r in csv.DictReader(handle) if int(r["global_step"]) <= global_step]
        with atomic_path(self.path) as tmp, open(tmp, "w", newline="") as handle:
            writer = csv.DictWriter(handle, self.fields)
            writer.writeheader()
            writer.writerows(rows)

    def append(self, row: dict) -> None:
        new = not self.path.is_file()
        with open(self.path, "a", newline="") as handle:
            writer = csv.DictWriter(handle, self.fields)
            if new:
                writer.writeheader()
            writer.writerow({k: row.get(k, "") for k in self.fields})


STEP_FIELDS = ["global_step", "stage", "step", "loss", "loss_lp", "loss_dc", "lambda", "lr", "dc_acc", "seconds"]
VALID_FIELDS = ["global_step", "stage", "step", "valid_roc_auc", "valid_pr_auc", "best"]


class RunLogger:
    """Writes ``log.csv``, ``valid.csv`` and (optionally) TensorBoard events under the run."""

    def __init__(self, run_dir: Path, tensorboard: bool, resume_step: int | None):
        self.steps = CsvLog(run_dir / "log.csv", STEP_FIELDS)
        self.valid = CsvLog(run_dir / "valid.csv", VALID_FIELDS)
        if resume_step is not None:
            self.steps.truncate_after(resume_step)
            self.valid.truncate_after(resume_step)
        self.writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(run_dir / "tb"), purge_step=resume_step)

    def step(self, row: dict) -> None:
        self.steps.append(row)
        self._scalars("train", row)

    def evaluation(self, row: dict) -> None:
        self.valid.append(row)
        self._scalars("valid", row)

    def _scalars(self, prefix: str, row: dict) -> None:
        if self.writer is None:
            return
        for key, value in row.items():
            if key not in ("global_step", "step", "stage") and isinstance(value, (int, float)):
                self.writer.add_scalar(f"{prefix}/{key}", value, row["global_step"])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
