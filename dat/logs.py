"""Per-step and per-validation logs: CSV files, validation predictions and TensorBoard, resumable.

``log.csv``
    One row per ``log_every`` steps: the means over those steps of the losses, λ, the
    DC's accuracy on each domain and the gradient norm, plus the learning rates.
``valid.csv``
    One row per validation: clean rows (they select the model) and noisy rows (reported).
``valid_probs/``
    Every validation's clip predictions (``GLOBALSTEP-STAGE.npz``) and the rows they
    belong to (``rows.json``), so curves can be bootstrapped over clips afterwards.

On resume, rows written after the checkpoint are dropped (they will be written again),
so a log never holds two rows for one step.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import torch

from .io import atomic_path, write_json

__all__ = ["CsvLog", "RunLogger", "StepAverager", "STEP_FIELDS", "VALID_FIELDS"]


class CsvLog:
    def __init__(self, path: Path, fields: list[str]):
        self.path, self.fields = Path(path), fields
        self._header_checked = False

    def _read(self) -> tuple[list[str], list[dict]]:
        with open(self.path, newline="") as handle:
            reader = csv.DictReader(handle)
            rows = list(reader)
            return reader.fieldnames or [], rows

    def _rewrite(self, rows: list[dict]) -> None:
        """``rows`` under the current header (fields a row lacks stay empty), atomically."""
        with atomic_path(self.path) as tmp, open(tmp, "w", newline="") as handle:
            writer = csv.DictWriter(handle, self.fields, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)

    def truncate_after(self, global_step: int, stage: int) -> None:
        """Keep rows up to ``(global_step, stage)``: a validation at a stage's step 0 shares its
        global step with the end of the stage before."""
        if not self.path.is_file():
            return
        _, rows = self._read()
        self._rewrite([r for r in rows if (int(r["global_step"]), int(r["stage"])) <= (global_step, stage)])

    def append(self, row: dict) -> None:
        new = not self.path.is_file()
        if not new and not self._header_checked:
            # A log written with fewer fields (an older dat) gets the current header first.
            header, rows = self._read()
            if header != self.fields:
                self._rewrite(rows)
        self._header_checked = True
        with open(self.path, "a", newline="") as handle:
            writer = csv.DictWriter(handle, self.fields)
            if new:
                writer.writeheader()
            writer.writerow({k: row.get(k, "") for k in self.fields})


STEP_FIELDS = ["global_step", "stage", "step", "loss", "loss_lp", "loss_dc", "lambda", "dc_acc_source",
               "dc_acc_target", "grad_norm", "lr", "lr_fe", "seconds", "loss_consistency"]
VALID_FIELDS = ["global_step", "stage", "step", "clean_roc_auc", "clean_pr_auc", "noisy_roc_auc", "noisy_pr_auc",
                "clean_clips", "noisy_clips", "best"]


class StepAverager:
    """Means of each logged quantity over the steps since the last log row."""

    def __init__(self):
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}

    def add(self, out: dict) -> None:
        for key, value in out.items():
            value = float(value.detach()) if torch.is_tensor(value) else float(value)
            if np.isfinite(value):
                self.sums[key] = self.sums.get(key, 0.0) + value
                self.counts[key] = self.counts.get(key, 0) + 1

    def pop(self) -> dict:
        means = {k: self.sums[k] / self.counts[k] for k in self.sums}
        self.sums, self.counts = {}, {}
        return means


class RunLogger:
    """Writes the CSV logs, validation predictions and (optionally) TensorBoard events."""

    def __init__(self, run_dir: Path, train_config, resume_at: tuple[int, int] | None, echo: bool = False):
        import time

        self.run_dir = Path(run_dir)
        self.steps = CsvLog(self.run_dir / "log.csv", STEP_FIELDS)
        self.valid = CsvLog(self.run_dir / "valid.csv", VALID_FIELDS)
        self.echo = echo
        self.started = time.perf_counter()
        if resume_at is not None:
            self.steps.truncate_after(*resume_at)
            self.valid.truncate_after(*resume_at)
        self.writer = None
        if train_config.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.run_dir / "tb"), purge_step=resume_at[0] if resume_at else None)

    def step(self, progress, means: dict, optimizer) -> dict:
        import time

        lrs = {g.get("name", ""): g["lr"] for g in optimizer.param_groups}
        row = {"global_step": progress.global_step, "stage": progress.stage, "step": progress.step,
               "lr": lrs.get("lp", lrs.get("dc", next(iter(lrs.values())))), "lr_fe": lrs.get("fe", ""),
               "seconds": round(time.perf_counter() - self.started, 3), **means}
        self.steps.append(row)
        self._scalars("train", row)
        return row

    def validation(self, progress, clean: dict, noisy: dict, improved: bool, clean_probs, noisy_probs, data) -> None:
        row = {"global_step": progress.global_step, "stage": progress.stage, "step": progress.step,
               "clean_roc_auc": clean["roc_auc"], "clean_pr_auc": clean["pr_auc"], "clean_clips": clean["clips"],
               "noisy_roc_auc": noisy.get("roc_auc", ""), "noisy_pr_auc": noisy.get("pr_auc", ""),
               "noisy_clips": noisy.get("clips", ""), "best": int(improved)}
        self.valid.append(row)
        self._scalars("valid", {k: v for k, v in row.items() if v != ""})
        self._save_probs(progress, clean_probs, noisy_probs, data)
        if self.echo:
            self._echo(progress, row)

    def _save_probs(self, progress, clean_probs, noisy_probs, data) -> None:
        folder = self.run_dir / "valid_probs"
        rows_file = folder / "rows.json"
        if not rows_file.is_file():
            from noisemix import schema as S

            rows = {"tags": data.tags, "clean": list(data.valid_clean.rows[S.MIXTURE_ID]),
                    "noisy": list(data.valid_noisy.rows[S.MIXTURE_ID]) if data.valid_noisy is not None else []}
            write_json(rows, rows_file)
        arrays = {"clean": clean_probs} | ({} if noisy_probs is None else {"noisy": noisy_probs})
        with atomic_path(folder / f"{progress.global_step:07d}-{progress.stage}.npz") as tmp:
            with open(tmp, "wb") as handle:
                np.savez(handle, **arrays)

    def _echo(self, progress, row: dict) -> None:
        from tqdm import tqdm

        noisy = "" if row["noisy_pr_auc"] == "" else \
            f" | noisy ROC-AUC {row['noisy_roc_auc']:.3f} PR-AUC {row['noisy_pr_auc']:.3f}"
        best = progress.selection.best
        tqdm.write(f"stage {progress.stage} step {progress.step}: valid clean ROC-AUC {row['clean_roc_auc']:.3f} "
                   f"PR-AUC {row['clean_pr_auc']:.3f}{noisy}"
                   f"{'  * new best' if row['best'] else ''} (best: stage {best.stage} step {best.step}, "
                   f"{best.score:.3f} -> {self.run_dir / 'best.pt'})", file=sys.stderr)  # with the bars; stdout: results

    def _scalars(self, prefix: str, row: dict) -> None:
        if self.writer is None:
            return
        for key, value in row.items():
            if key not in ("global_step", "step", "stage") and isinstance(value, (int, float)):
                self.writer.add_scalar(f"{prefix}/{key}", value, row["global_step"])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def read_valid_rows(run_dir: Path) -> dict:
    """``rows.json`` of a run's validation predictions."""
    return json.loads((Path(run_dir) / "valid_probs" / "rows.json").read_text())
