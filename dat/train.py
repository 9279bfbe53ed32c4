"""One training loop for the three stages and the four methods.

Stage 1 trains FE + LP on labelled source audio. Stage 2 (``dat`` only) trains the DC
alone on embeddings of the frozen FE. Stage 3 starts from stage 1's best model and gives
every method the same number of updates on the same source (and target) batches; the
losses of each stage and method are in :mod:`dat.stages`. With the adversarial methods::

    L = L_LP(src) + w · (L_DC(src) + L_DC(trg)) / 2,   GRL coefficient λ(step)

so the DC minimises its loss while the FE receives ``-λ·w`` times its gradient; λ ramps
over a fixed horizon (:func:`dat.schedules.grl_coefficient`) and the FE learns at
``fe_lr_scale`` times the heads' rate.

Model selection follows one rule for all methods (:mod:`dat.selection`): the best
clean-validation PR-AUC over stages 1 and 3, carried across stages, written to
``best.pt`` and explained in ``selection.json``. ``best_stage1.pt`` is stage 1's best,
the starting point of stages 2 and 3 (and of other runs, with ``stage1_from``).

All state lives in :class:`Progress`, the modules, optimizers, schedulers, the AMP
scaler, the domain streams and the RNG; ``last.pt`` holds all of it, so a killed run
resumes where it stopped.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel as DDP

from . import checkpoint, distributed
from .config import RunConfig, StageConfig, check_stages, is_adversarial, method_stages, saved_with_defaults
from .data import DomainStream, domain_classes, prepare_training_data
from .errors import DatError
from .logs import RunLogger, StepAverager
from .memory import keep_freed_memory
from .metrics import macro_scores
from .models import DatNet, Nets, Tagger, load_clmr_state_dict
from .predict import predict_clips
from .schedules import grl_coefficient, lr_factor
from .selection import Choice, Selection
from .stages import Batch, adversarial_step, consistency_step, dc_pretrain_step, ema_update, lp_step, multicondition_step

__all__ = ["Progress", "Trainer", "train", "autocast_factory", "apply_step"]


@dataclass
class Progress:
    """Where training stands; saved in every checkpoint."""

    stage: int = 0                     # stage being run (0 before the first)
    step: int = 0                      # steps done in this stage
    global_step: int = 0               # steps done in all stages
    completed: list = field(default_factory=list)
    selection: Selection = field(default_factory=Selection)

    @classmethod
    def from_dict(cls, saved: dict) -> "Progress":
        sel = dict(saved["selection"])
        selection = Selection(Choice(**sel.pop("best")), Choice(**sel.pop("noisy_best")), **sel)
        return cls(saved["stage"], saved["step"], saved["global_step"], list(saved["completed"]), selection)


def autocast_factory(device: torch.device, amp: str):
    """``(autocast context factory, use GradScaler)`` for the device and the ``amp`` setting."""
    if amp == "off" or (amp == "auto" and device.type != "cuda"):
        return contextlib.nullcontext, False
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
    if dtype is None:  # auto on CUDA
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return (lambda: torch.autocast(device.type, dtype=dtype)), dtype == torch.float16


def apply_step(loss: torch.Tensor, optimizers, schedulers, scaler, clip_norm: float = 0.0) -> float:
    """Backward of ``loss``, optional gradient clipping and one update of every optimizer
    (AMP-scaled when enabled); returns the global gradient norm before clipping (NaN if not measured)."""
    optimizers = list(optimizers)
    for opt in optimizers:
        opt.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    norm = float("nan")
    if clip_norm > 0:
        for opt in optimizers:
            scaler.unscale_(opt)
        params = [p for opt in optimizers for g in opt.param_groups for p in g["params"] if p.grad is not None]
        norm = float(torch.nn.utils.clip_grad_norm_(params, clip_norm))
    for opt in optimizers:
        scaler.step(opt)
    scaler.update()
    for sched in schedulers:
        sched.step()
    return norm


def _seed_of(seed: int, rank: int) -> int:
    # Distinct, reproducible torch RNG streams per rank (dropout), derived from the run seed.
    return int(np.random.SeedSequence([seed & 0xFFFFFFFF, rank, 0x7DA7]).generate_state(1)[0])


def versions() -> dict:
    import noisemix

    from . import __version__

    return {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
            "noisemix": noisemix.__version__, "dat": __version__}


class Trainer:
    def __init__(self, config: RunConfig, manifest, run_dir: Path, ctx: distributed.Context, *,
                 stages: list[int] | None = None, pretrained: Path | None = None, resume: bool = False,
                 stage1_from: Path | None = None, on_step=None):
        from .stage1 import import_stage1

        self.config, self.manifest, self.ctx = config, manifest, ctx
        self.run_dir = Path(run_dir)
        self.on_step = on_step
        self.last_path, self.best_path = self.run_dir / "last.pt", self.run_dir / "best.pt"
        self.stage1_path = self.run_dir / "best_stage1.pt"
        saved = self._check_run_dir(resume)
        self._load_data()
        self.stage1_from = None
        self.teacher = None  # consistency: the stage-1 model (frozen or EMA), loaded when stage 3 first needs it
        if stage1_from is not None:
            if saved is not None:
                raise DatError("--stage1-from starts a new run; it cannot be combined with --resume")
            saved = import_stage1(Path(stage1_from), self)
            self.stage1_from = Path(stage1_from)
        if saved and saved.get("pretrained") and pretrained is None:
            pretrained = Path(saved["pretrained"])  # a resumed run keeps the FE it started from
        self.plan = self._plan(stages, pretrained, saved)
        self.nets = Nets(config.model, len(self.tags), domain_classes(config.model.dc_mode)).to(ctx.device)
        self.progress = Progress()
        self.autocast, fp16 = autocast_factory(ctx.device, config.train.amp)
        self.scaler = torch.amp.GradScaler(ctx.device.type, enabled=fp16)
        self.optimizers: dict = {}
        self.schedulers: dict = {}
        self.saved = saved
        if saved is None and pretrained is not None:
            load_clmr_state_dict(self.nets.fe, pretrained)
        self.pretrained = pretrained
        self.logger = None

    # --- setup --------------------------------------------------------------------

    def _check_run_dir(self, resume: bool) -> dict | None:
        if self.last_path.is_file() and not resume:
            raise DatError(f"{self.run_dir} already holds a run; pass --resume to continue it or choose another --out")
        if not resume:
            return None
        if not self.last_path.is_file():
            raise DatError(f"{self.run_dir}: nothing to resume (no last.pt)")
        saved = checkpoint.load(self.last_path, kind="train")
        checkpoint.check_architecture(saved, self.config.model, str(self.last_path))
        if saved_with_defaults(saved["config"]) != self.config.to_dict():
            raise DatError(f"{self.last_path}: saved with another config; resume with the run's config.json")
        return saved

    def _plan(self, stages, pretrained, saved) -> list[int]:
        plan = method_stages(self.config.method, pretrained_fe=pretrained is not None)
        done = set(saved["progress"]["completed"]) if saved else set()
        if stages:
            check_stages(self.config.method, stages, 1 in done or pretrained is not None, self.run_dir)
            plan = sorted(set(stages))
        return [s for s in plan if s not in done]

    def _load_data(self) -> None:
        cache = self.config.data.cache_dir or None
        show = self.config.train.progress and self.ctx.is_main
        # Rank 0 decodes the cache first; the others then memory-map it.
        if self.ctx.is_main:
            self.data = prepare_training_data(self.manifest, self.config, cache, show)
        distributed.barrier(self.ctx)
        if not self.ctx.is_main:
            self.data = prepare_training_data(self.manifest, self.config, cache, False)
        self.tags = self.data.tags
        d, seed, rank, world = self.config.data, self.config.seed, self.ctx.rank, self.ctx.world
        # Target and labelled noisy rows share the sampler seed: the same batches of the same windows.
        datasets = {"source": (self.data.source, seed), "target": (self.data.target, seed + 1),
                    "noisy_labelled": (self.data.noisy_labelled, seed + 1)}
        self.streams = {name: DomainStream(ds, d.batch_size, s, d.num_workers, rank, world)
                        for name, (ds, s) in datasets.items() if ds is not None}

    # --- state --------------------------------------------------------------------

    def state(self) -> dict:
        rng = {"torch": torch.get_rng_state()}
        if self.ctx.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.ctx.device)
        per_rank = distributed.gather_array(self.ctx, rng)
        return {
            "kind": "train", "config": self.config.to_dict(), "model_config": asdict(self.config.model),
            "tags": self.tags, "method": self.config.method, "plan": self.plan,
            "pretrained": str(self.pretrained) if self.pretrained else "",
            "fe": self.nets.fe.state_dict(), "lp": self.nets.lp.state_dict(), "dc": self.nets.dc.state_dict(),
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "schedulers": {k: s.state_dict() for k, s in self.schedulers.items()},
            "scaler": self.scaler.state_dict(), "progress": asdict(self.progress),
            "streams": {name: stream.state_dict() for name, stream in self.streams.items()},
            "rng": per_rank,
            **({"teacher": self.teacher.state_dict()} if self._ema_teacher() and self.teacher is not None else {}),
        }

    def _restore(self, saved: dict) -> None:
        checkpoint.check_tags(saved["tags"], self.tags, str(self.last_path))
        self.nets.fe.load_state_dict(saved["fe"])
        self.nets.lp.load_state_dict(saved["lp"])
        self.nets.dc.load_state_dict(saved["dc"])
        self.progress = Progress.from_dict(saved["progress"])
        for name, stream in self.streams.items():
            if name in saved["streams"]:  # a stream the saved run did not have has not moved yet
                stream.load_state_dict(saved["streams"][name])
        self.scaler.load_state_dict(saved["scaler"])
        if "teacher" in saved:  # an EMA teacher has moved away from stage 1: it goes on from where it was
            self._teacher().load_state_dict(saved["teacher"])
        if len(saved["rng"]) != self.ctx.world:
            raise DatError(f"{self.last_path}: saved by {len(saved['rng'])} process(es), resumed with {self.ctx.world}")
        rng = saved["rng"][self.ctx.rank]
        torch.set_rng_state(rng["torch"])
        if "cuda" in rng and self.ctx.device.type == "cuda":
            torch.cuda.set_rng_state(rng["cuda"], self.ctx.device)

    def _save(self, path: Path | None = None) -> None:
        state = self.state()  # collective under DDP: every rank takes part
        if self.ctx.is_main:
            checkpoint.save(state, path or self.last_path)
        distributed.barrier(self.ctx)

    def _save_model(self, path: Path, score: float, rule: str) -> None:
        if self.ctx.is_main:
            checkpoint.save({
                "kind": "model", "model_config": asdict(self.config.model), "tags": self.tags,
                "method": self.config.method, "seed": self.config.seed, "stage": self.progress.stage,
                "step": self.progress.step, "global_step": self.progress.global_step, "valid_pr_auc": score,
                "selected_by": rule,
                "fe": self.nets.fe.state_dict(), "lp": self.nets.lp.state_dict(), "dc": self.nets.dc.state_dict(),
            }, path)

    def _write_run_info(self) -> None:
        if not self.ctx.is_main:
            return
        from .io import write_json, write_text

        write_text(self.config.to_json() + "\n", self.run_dir / "config.json")
        launch = {"argv": sys.argv, "world_size": self.ctx.world, "device": str(self.ctx.device), "versions": versions()}
        info_path = self.run_dir / "run.json"
        if self.saved is not None and info_path.is_file():
            # A resume keeps how the run started and adds how it was continued.
            info = json.loads(info_path.read_text())
            info["resumes"] = info.get("resumes", []) + [dict(launch, global_step=self.saved["progress"]["global_step"])]
        else:
            info = {"method": self.config.method, "seed": self.config.seed, "stages": self.plan,
                    "manifest": str(self.manifest.directory),
                    "manifest_fingerprints": self.manifest.fingerprints,
                    "stage1_inputs": self.stage1_inputs(), "stage1_from": str(self.stage1_from or ""),
                    "tags": self.tags, "pretrained": str(self.pretrained or ""), **launch}
        write_json(info, info_path)

    def stage1_inputs(self) -> str:
        """Digest of what stage 1 reads (source and clean validation rows, their audio)."""
        from .data import rows_digest

        return rows_digest(self.manifest, [self.data.source.rows, self.data.valid_clean.rows])

    # --- stages -------------------------------------------------------------------

    def stage_config(self, stage: int) -> StageConfig:
        t = self.config.train
        return {1: t.stage1, 2: t.stage2, 3: t.stage3}[stage]

    def _stage_model(self, stage: int) -> torch.nn.Module:
        """Exactly the modules whose parameters the stage trains (DDP sees no unused ones)."""
        if stage == 2:
            return self.nets.dc
        if stage == 3 and is_adversarial(self.config.method):
            return DatNet(self.nets.fe, self.nets.lp, self.nets.dc)
        return Tagger(self.nets.fe, self.nets.lp)

    def _param_groups(self, stage: int, sc: StageConfig) -> list[dict]:
        if stage == 2:
            return [{"params": list(self.nets.dc.parameters()), "lr": sc.lr, "name": "dc"}]
        groups = [{"params": list(self.nets.fe.parameters()), "lr": sc.lr * sc.fe_lr_scale, "name": "fe"},
                  {"params": list(self.nets.lp.parameters()), "lr": sc.lr, "name": "lp"}]
        if stage == 3 and is_adversarial(self.config.method):
            groups.append({"params": list(self.nets.dc.parameters()), "lr": sc.lr, "name": "dc"})
        return groups

    def _begin_stage(self, stage: int, fresh: bool) -> None:
        """Optimizer and scheduler of ``stage``; on a fresh start, its initial weights."""
        if fresh:
            if stage in (2, 3) and self.stage1_path.is_file():
                nets, _ = checkpoint.load_model(self.stage1_path)
                self.nets.fe.load_state_dict(nets.fe.state_dict())
                self.nets.lp.load_state_dict(nets.lp.state_dict())
            self.progress.stage, self.progress.step = stage, 0
            self.progress.selection.start_stage()
        sc = self.stage_config(stage)
        opt = torch.optim.AdamW(self._param_groups(stage, sc), lr=sc.lr, weight_decay=sc.weight_decay)
        self.optimizers = {"main": opt}
        self.schedulers = {"main": torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s, sc=sc: lr_factor(s, sc.steps, sc.warmup_steps, sc.lr_schedule))}
        model = self._stage_model(stage)
        self.model = DDP(model) if self.ctx.distributed else model

    def _batch(self, name: str) -> Batch:
        raw = next(self.streams[name])
        self.batch_ids += list(raw["mixture_id"])
        dev = self.ctx.device
        labels = raw["labels"].to(dev, non_blocking=True) if "labels" in raw else None
        clean = raw["clean_audio"].to(dev, non_blocking=True) if "clean_audio" in raw else None
        return Batch(raw["audio"].to(dev, non_blocking=True), raw["domain"].to(dev, non_blocking=True), labels, clean)

    def _step(self, stage: int) -> dict:
        """One optimisation step of ``stage``; returns its scalar logs (as tensors or floats)."""
        self.batch_ids = []
        method = self.config.method
        src = self._batch("source")
        if stage == 2:
            out = dc_pretrain_step(self.nets.fe, self.model, src, self._batch("target"), self.autocast)
        elif stage == 1 or method == "source-only":
            out = lp_step(self.model, src, self.autocast)
        elif method == "multicondition":
            out = multicondition_step(self.model, src, self._batch("noisy_labelled"), self.autocast)
        elif method == "consistency":
            out = consistency_step(self.model, self._teacher(), src, self._batch("target"),
                                   self.config.train.consistency_weight, self.autocast)
        else:
            t = self.config.train
            coefficient = grl_coefficient(self.progress.step, t.lambda_horizon_steps, t.lambda_schedule, t.lambda_max)
            out = adversarial_step(self.model, src, self._batch("target"), coefficient, t.dc_weight, self.autocast)
        self._check_finite(out["loss"], stage)
        out["grad_norm"] = apply_step(out["loss"], self.optimizers.values(), self.schedulers.values(), self.scaler,
                                      self.stage_config(stage).grad_clip_norm)
        if stage == 3 and self._ema_teacher():
            ema_update(self._teacher(), Tagger(self.nets.fe, self.nets.lp), self.config.train.teacher_ema_decay)
        return out

    def _ema_teacher(self) -> bool:
        return self.config.method == "consistency" and self.config.train.consistency_teacher == "ema"

    def _teacher(self) -> torch.nn.Module:
        """The consistency targets' model in eval mode, with no gradients: stage 1's best
        (best_stage1.pt), frozen or (``consistency_teacher = "ema"``) followed by an EMA of the student."""
        if self.teacher is None:
            # Building the networks draws their initial weights: keep that off the training's RNG,
            # or a resumed run (which builds the teacher again) would draw other dropout masks.
            with torch.random.fork_rng(devices=[]):
                nets, _ = checkpoint.load_model(self.stage1_path)
            self.teacher = Tagger(nets.fe, nets.lp).to(self.ctx.device).eval()
            for parameter in self.teacher.parameters():
                parameter.requires_grad_(False)
        return self.teacher

    def _check_finite(self, loss: torch.Tensor, stage: int) -> None:
        bad = not bool(torch.isfinite(loss.detach()))
        if distributed.any_flag(self.ctx, bad):
            where = f"stage {stage} step {self.progress.step + 1} (global {self.progress.global_step + 1})"
            ids = ", ".join(self.batch_ids[:8]) + (" ..." if len(self.batch_ids) > 8 else "")
            raise DatError(f"loss is NaN/inf at {where}; batch mixtures: {ids or 'on another rank'}")

    def _predict(self, evalset) -> np.ndarray:
        return predict_clips(Tagger(self.nets.fe, self.nets.lp), evalset.chunks, self.config.data.eval_batch_size,
                             self.config.data.num_workers, self.ctx, self.autocast)

    def _validate(self) -> None:
        """Score clean (selects) and noisy (reported) validation rows; keep the chosen models."""
        clean_probs = self._predict(self.data.valid_clean)
        clean = macro_scores(self.data.valid_clean.labels, clean_probs)
        if not np.isfinite(clean["pr_auc"]):
            raise DatError("validation split: no tag has both positive and negative clean clips; cannot select a model")
        noisy, noisy_probs = {}, None
        if self.data.valid_noisy is not None:
            noisy_probs = self._predict(self.data.valid_noisy)
            noisy = macro_scores(self.data.valid_noisy.labels, noisy_probs)
        p = self.progress
        improved, noisy_improved = p.selection.update(clean["pr_auc"], noisy.get("pr_auc"), p.stage, p.step,
                                                      p.global_step)
        if improved:
            self._save_model(self.best_path, clean["pr_auc"], "valid clean PR-AUC (the rule)")
        if noisy_improved:
            self._save_model(self.run_dir / "best_noisy_valid.pt", noisy["pr_auc"],
                             "valid noisy PR-AUC (reported only; uses target labels)")
        if self.logger:
            self.logger.validation(p, clean, noisy, improved, clean_probs, noisy_probs, self.data)

    def _run_stage(self, stage: int) -> None:
        from .progress import StageBar

        p, t = self.progress, self.config.train
        total = self.stage_config(stage).steps
        selects = stage in (1, 3)
        bar = StageBar(stage, total, p.step, enabled=t.progress and self.ctx.is_main)
        averager = StepAverager()
        if selects and p.step == 0 and stage == 3 and p.selection.best.step >= 0:
            self._validate()  # the curve's start: stage 1's best model, before any stage-3 update
        try:
            last_eval = p.step
            while p.step < total and not (selects and p.selection.stale >= t.patience):
                out = self._step(stage)
                p.step += 1
                p.global_step += 1
                averager.add(out)
                if self.logger and (p.step % t.log_every == 0 or p.step == total):
                    row = self.logger.step(p, averager.pop(), self.optimizers["main"])
                    bar.show(row)
                bar.update()
                if selects and p.step % t.eval_every == 0:
                    self._validate()
                    last_eval = p.step
                if p.step % t.checkpoint_every == 0:
                    self._save()
                if self.on_step:
                    self.on_step(self)
            if selects and last_eval != p.step and p.step > 0 and p.selection.stale < t.patience:
                self._validate()
        except BaseException:
            bar.abandon()  # an error message then starts on a line of its own
            raise
        bar.close(p, stopped_early=p.step < total)
        if stage == 1 and self.ctx.is_main and self.best_path.is_file():
            shutil.copyfile(self.best_path, self.stage1_path)
        p.completed = sorted(set(p.completed) | {stage})
        self._save()

    def run(self) -> dict:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._write_run_info()
        resume_at = None
        if self.saved is not None:
            self._restore(self.saved)
            resume_at = (self.progress.global_step, self.progress.stage)
        if self.ctx.is_main:
            self.logger = RunLogger(self.run_dir, self.config.train, resume_at, echo=self.config.train.progress)
        try:
            for stage in self.plan:
                fresh = not (self.saved is not None and self.progress.stage == stage
                             and stage not in self.progress.completed)
                self._begin_stage(stage, fresh)
                if not fresh:
                    self.optimizers["main"].load_state_dict(self.saved["optimizers"]["main"])
                    self.schedulers["main"].load_state_dict(self.saved["schedulers"]["main"])
                self._run_stage(stage)
        finally:
            if self.logger:
                self.logger.close()
        return self._finish()

    def _finish(self) -> dict:
        from .io import write_json
        from .plots import plot_training

        selection = self.progress.selection.report()
        if self.ctx.is_main:
            write_json(selection, self.run_dir / "selection.json")
            plot_training(self.run_dir)
        return {"best_valid_pr_auc": self.progress.selection.best.score, "global_step": self.progress.global_step,
                "completed": self.progress.completed, "selection": selection}


def train(config: RunConfig, manifest, run_dir: Path, *, stages=None, pretrained=None, resume=False,
          stage1_from=None, device: str = "auto", on_step=None) -> dict:
    """Train ``config.method`` on ``manifest`` into ``run_dir`` (resuming when asked).

    Randomness: model initialisation and dropout draw from torch's generator, seeded
    from ``config.seed`` (and the rank) inside a forked RNG scope, so the caller's global
    RNG is untouched; data crops and order are functions of the seed alone.
    """
    if config.train.deterministic:
        # cuBLAS needs this before CUDA starts to run deterministically; harmless on CPU.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    keep_freed_memory()
    ctx = distributed.setup(device)
    deterministic, threads = torch.are_deterministic_algorithms_enabled(), torch.get_num_threads()
    devices = [ctx.device] if ctx.device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(_seed_of(config.seed, ctx.rank))
            torch.use_deterministic_algorithms(config.train.deterministic)
            if config.train.threads:
                torch.set_num_threads(config.train.threads)
            trainer = Trainer(config, manifest, run_dir, ctx, stages=stages, pretrained=pretrained, resume=resume,
                              stage1_from=stage1_from, on_step=on_step)
            return trainer.run()
    finally:
        torch.use_deterministic_algorithms(deterministic)
        torch.set_num_threads(threads)
        distributed.teardown(ctx)
