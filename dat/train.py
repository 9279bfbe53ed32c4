"""One training loop for the three stages and the four methods.

Stage 1 trains FE + LP on labelled source audio (``L = L_LP(src)``).
Stage 2 trains the DC alone on source and target embeddings of the frozen FE.
Stage 3 trains all three jointly through the gradient reversal layer::

    L = L_LP(src) + w · (L_DC(src) + L_DC(trg)),   GRL coefficient λ(p)

so the DC minimises its loss while the FE receives ``-λ·w`` times its gradient (the
issue's ``L_LP + λ(L_DC(src) + L_DC(trg))`` seen from the FE; ``w = train.dc_weight``).

Methods (see :func:`dat.config.method_stages`): ``source-only`` and ``multicondition``
run stage 1 for ``stage1.steps + stage3.steps`` steps (same FE + LP budget as DAT),
on clean or on clean + labelled noisy rows; ``dat-no-dc-pretrain`` runs stages 1 and 3;
``dat`` runs 1, 2 and 3. Stages 1 and 3 validate every ``eval_every`` steps on the
validation split (never test), keep the best macro PR-AUC model in ``best.pt`` and stop
early after ``patience`` evaluations without gain. Stages 2 and 3 start from stage 1's
best model (``best_stage1.pt``).

All state lives in :class:`Progress`, the modules, optimizers, schedulers, the AMP
scaler, the two domain streams and the RNG; ``last.pt`` holds all of it, so a killed run
resumes where it stopped.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel as DDP

from . import checkpoint, distributed
from .config import RunConfig, StageConfig, method_stages
from .data import DomainStream, domain_classes, prepare_training_data
from .errors import DatError
from .logs import RunLogger
from .losses import domain_accuracy, domain_loss, tag_loss
from .metrics import macro_scores
from .models import DatNet, Nets, Tagger, load_clmr_state_dict
from .predict import predict_clips
from .schedules import grl_coefficient, lr_factor

__all__ = ["Progress", "Trainer", "train", "autocast_factory", "apply_step"]


@dataclass
class Progress:
    """Where training stands; saved in every checkpoint."""

    stage: int = 0                     # stage being run (0 before the first)
    step: int = 0                      # steps done in this stage
    global_step: int = 0               # steps done in all stages
    completed: list = field(default_factory=list)
    best_score: float = float("-inf")  # best validation PR-AUC in this stage
    best_step: int = -1
    stale: int = 0                     # evaluations since the best one


def autocast_factory(device: torch.device, amp: str):
    """``(autocast context factory, use GradScaler)`` for the device and the ``amp`` setting."""
    if amp == "off" or (amp == "auto" and device.type != "cuda"):
        return contextlib.nullcontext, False
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
    if dtype is None:  # auto on CUDA
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return (lambda: torch.autocast(device.type, dtype=dtype)), dtype == torch.float16


def apply_step(loss: torch.Tensor, optimizers, schedulers, scaler) -> None:
    """Backward of ``loss`` and one update of every optimizer (AMP-scaled when enabled)."""
    optimizers = list(optimizers)
    for opt in optimizers:
        opt.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    for opt in optimizers:
        scaler.step(opt)
    scaler.update()
    for sched in schedulers:
        sched.step()


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
                 on_step=None):
        self.config, self.manifest, self.ctx = config, manifest, ctx
        self.run_dir = Path(run_dir)
        self.on_step = on_step
        self.last_path, self.best_path = self.run_dir / "last.pt", self.run_dir / "best.pt"
        self.stage1_path = self.run_dir / "best_stage1.pt"
        saved = self._check_run_dir(resume)
        if saved and saved.get("pretrained") and pretrained is None:
            pretrained = Path(saved["pretrained"])  # a resumed run keeps the FE it started from
        self.plan = self._plan(stages, pretrained, saved)
        self._load_data()
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
        if saved["config"] != self.config.to_dict():
            raise DatError(f"{self.last_path}: saved with another config; resume with the run's config.json")
        return saved

    def _plan(self, stages, pretrained, saved) -> list[int]:
        plan = method_stages(self.config.method, pretrained_fe=pretrained is not None)
        if stages:
            extra = sorted(set(stages) - set(method_stages(self.config.method)))
            if extra:
                raise DatError(f"method {self.config.method} has no stage {extra[0]} "
                               f"(its stages: {method_stages(self.config.method)})")
            plan = sorted(set(stages))
        done = set(saved["progress"]["completed"]) if saved else set()
        has_fe = 1 in done or pretrained is not None
        if plan and plan[0] != 1 and not has_fe:
            raise DatError(f"stage {plan[0]} needs a trained FE: run stage 1 in {self.run_dir} first "
                           f"or pass --pretrained CLMR_CHECKPOINT")
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
        self.source = DomainStream(self.data.source, d.batch_size, seed, d.num_workers, rank, world)
        self.target = DomainStream(self.data.target, d.batch_size, seed + 1, d.num_workers, rank, world)

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
            "streams": {"source": self.source.state_dict(), "target": self.target.state_dict()},
            "rng": per_rank,
        }

    def _restore(self, saved: dict) -> None:
        checkpoint.check_tags(saved["tags"], self.tags, str(self.last_path))
        self.nets.fe.load_state_dict(saved["fe"])
        self.nets.lp.load_state_dict(saved["lp"])
        self.nets.dc.load_state_dict(saved["dc"])
        self.progress = Progress(**saved["progress"])
        self.source.load_state_dict(saved["streams"]["source"])
        self.target.load_state_dict(saved["streams"]["target"])
        self.scaler.load_state_dict(saved["scaler"])
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

    def _save_best(self, score: float) -> None:
        if self.ctx.is_main:
            checkpoint.save({
                "kind": "model", "model_config": asdict(self.config.model), "tags": self.tags,
                "method": self.config.method, "seed": self.config.seed, "stage": self.progress.stage,
                "step": self.progress.step, "valid_pr_auc": score,
                "fe": self.nets.fe.state_dict(), "lp": self.nets.lp.state_dict(), "dc": self.nets.dc.state_dict(),
            }, self.best_path)

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
                    "manifest_fingerprints": self.manifest.info.get("fingerprints", {}),
                    "tags": self.tags, "pretrained": str(self.pretrained or ""), **launch}
        write_json(info, info_path)

    # --- stages -------------------------------------------------------------------

    def stage_config(self, stage: int) -> StageConfig:
        t = self.config.train
        if stage == 1 and self.config.method in ("source-only", "multicondition"):
            return StageConfig(**dict(asdict(t.stage1), steps=t.stage1.steps + t.stage3.steps))
        return {1: t.stage1, 2: t.stage2, 3: t.stage3}[stage]

    def _begin_stage(self, stage: int, fresh: bool) -> None:
        """Optimizers and schedulers of ``stage``; on a fresh start, its initial weights."""
        if fresh:
            if stage in (2, 3) and self.stage1_path.is_file():
                nets, _ = checkpoint.load_model(self.stage1_path)
                self.nets.fe.load_state_dict(nets.fe.state_dict())
                self.nets.lp.load_state_dict(nets.lp.state_dict())
            self.progress = Progress(stage=stage, global_step=self.progress.global_step,
                                     completed=self.progress.completed)
        sc = self.stage_config(stage)
        groups = {1: {"main": [self.nets.fe, self.nets.lp]}, 2: {"dc": [self.nets.dc]},
                  3: {"main": [self.nets.fe, self.nets.lp], "dc": [self.nets.dc]}}[stage]
        self.optimizers, self.schedulers = {}, {}
        for name, modules in groups.items():
            params = [p for m in modules for p in m.parameters()]
            opt = torch.optim.Adam(params, lr=sc.lr, weight_decay=sc.weight_decay)
            self.optimizers[name] = opt
            self.schedulers[name] = torch.optim.lr_scheduler.LambdaLR(
                opt, lambda s, sc=sc: lr_factor(s, sc.steps, sc.warmup_steps, sc.lr_schedule))
        wrap = (lambda m: DDP(m)) if self.ctx.distributed else (lambda m: m)
        self.model = wrap({1: Tagger(self.nets.fe, self.nets.lp), 2: self.nets.dc,
                           3: DatNet(self.nets.fe, self.nets.lp, self.nets.dc)}[stage])

    def _to(self, batch: dict, key: str) -> torch.Tensor:
        return batch[key].to(self.ctx.device, non_blocking=True)

    def _step(self, stage: int) -> dict:
        """One optimisation step of ``stage``; returns its scalar logs (as tensors)."""
        src = next(self.source)
        trg = next(self.target) if stage in (2, 3) else None
        self.batch_ids = list(src["mixture_id"]) + (list(trg["mixture_id"]) if trg else [])
        out = {}
        if stage == 1:
            self.nets.fe.train()
            self.nets.lp.train()
            with self.autocast():
                logits = self.model(self._to(src, "audio"))
            out["loss_lp"] = loss = tag_loss(logits, self._to(src, "labels"))
        else:
            audio = torch.cat([self._to(src, "audio"), self._to(trg, "audio")])
            domains = torch.cat([self._to(src, "domain"), self._to(trg, "domain")])
            n = src["audio"].shape[0]
            if stage == 2:
                self.nets.fe.eval()  # frozen FE: no BN statistics update either
                self.nets.dc.train()
                with torch.no_grad(), self.autocast():
                    z = self.nets.fe(audio)
                with self.autocast():
                    dc_logits = self.model(z.float())
                lp_loss = None
            else:
                self.nets.train()
                sc = self.stage_config(3)
                out["lambda"] = grl_coefficient(self.progress.step, sc.steps, self.config.train.lambda_schedule,
                                                self.config.train.lambda_max)
                with self.autocast():
                    lp_logits, dc_logits = self.model(audio, n, out["lambda"])
                out["loss_lp"] = lp_loss = tag_loss(lp_logits, self._to(src, "labels"))
            out["loss_dc"] = domain_loss(dc_logits[:n], domains[:n]) + domain_loss(dc_logits[n:], domains[n:])
            out["dc_acc"] = domain_accuracy(dc_logits.detach(), domains)
            loss = out["loss_dc"] if lp_loss is None else lp_loss + self.config.train.dc_weight * out["loss_dc"]
        out["loss"] = loss
        self._check_finite(loss, stage)
        self._backward(loss)
        return out

    def _check_finite(self, loss: torch.Tensor, stage: int) -> None:
        bad = not bool(torch.isfinite(loss.detach()))
        if distributed.any_flag(self.ctx, bad):
            where = f"stage {stage} step {self.progress.step + 1} (global {self.progress.global_step + 1})"
            ids = ", ".join(self.batch_ids[:8]) + (" ..." if len(self.batch_ids) > 8 else "")
            raise DatError(f"loss is NaN/inf at {where}; batch mixtures: {ids or 'on another rank'}")

    def _backward(self, loss: torch.Tensor) -> None:
        apply_step(loss, self.optimizers.values(), self.schedulers.values(), self.scaler)

    def _validate(self) -> float:
        probs = predict_clips(Tagger(self.nets.fe, self.nets.lp), self.data.valid, self.config.data.eval_batch_size,
                              self.config.data.num_workers, self.ctx, self.autocast)
        scores = macro_scores(self.data.valid_labels, probs)
        if not np.isfinite(scores["pr_auc"]):
            raise DatError("validation split: no tag has both positive and negative clips; cannot select a model")
        p = self.progress
        improved = scores["pr_auc"] > p.best_score
        if improved:
            p.best_score, p.best_step, p.stale = scores["pr_auc"], p.step, 0
            self._save_best(scores["pr_auc"])
        else:
            p.stale += 1
        if self.logger:
            self.logger.evaluation({"global_step": p.global_step, "stage": p.stage, "step": p.step,
                                    "valid_roc_auc": scores["roc_auc"], "valid_pr_auc": scores["pr_auc"],
                                    "best": int(improved)})
        return scores["pr_auc"]

    def _log(self, out: dict, started: float) -> dict:
        p = self.progress
        row = {"global_step": p.global_step, "stage": p.stage, "step": p.step,
               "lr": next(iter(self.optimizers.values())).param_groups[0]["lr"],
               "seconds": round(time.perf_counter() - started, 3)}
        row.update({k: float(v.detach()) if torch.is_tensor(v) else float(v) for k, v in out.items()})
        self.logger.step(row)
        return row

    def _run_stage(self, stage: int) -> None:
        from tqdm import tqdm

        p, t = self.progress, self.config.train
        total = self.stage_config(stage).steps
        selects = stage in (1, 3)
        bar = tqdm(total=total, initial=p.step, desc=f"stage {stage}", leave=False,
                   disable=not (t.progress and self.ctx.is_main))
        started = time.perf_counter()
        last_eval = -1
        while p.step < total and not (selects and p.stale >= t.patience):
            out = self._step(stage)
            p.step += 1
            p.global_step += 1
            bar.update(1)
            if self.logger and (p.step % t.log_every == 0 or p.step == total):
                row = self._log(out, started)
                bar.set_postfix(loss=f"{row['loss']:.4f}")
            if selects and p.step % t.eval_every == 0:
                self._validate()
                last_eval = p.step
            if p.step % t.checkpoint_every == 0:
                self._save()
            if self.on_step:
                self.on_step(self)
        bar.close()
        if selects and last_eval != p.step and p.step > 0 and p.stale < t.patience:
            self._validate()
        if stage == 1 and self.ctx.is_main and self.best_path.is_file():
            shutil.copyfile(self.best_path, self.stage1_path)
        p.completed = sorted(set(p.completed) | {stage})
        self._save()

    def run(self) -> dict:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._write_run_info()
        resume_step = None
        if self.saved is not None:
            self._restore(self.saved)
            resume_step = self.progress.global_step
        if self.ctx.is_main:
            self.logger = RunLogger(self.run_dir, self.config.train.tensorboard, resume_step)
        try:
            for stage in self.plan:
                fresh = not (self.saved is not None and self.progress.stage == stage)
                self._begin_stage(stage, fresh)
                if not fresh:
                    for name, opt in self.optimizers.items():
                        opt.load_state_dict(self.saved["optimizers"][name])
                        self.schedulers[name].load_state_dict(self.saved["schedulers"][name])
                self._run_stage(stage)
        finally:
            if self.logger:
                self.logger.close()
        return {"best_valid_pr_auc": self.progress.best_score, "global_step": self.progress.global_step,
                "completed": self.progress.completed}


def train(config: RunConfig, manifest, run_dir: Path, *, stages=None, pretrained=None, resume=False,
          device: str = "auto", on_step=None) -> dict:
    """Train ``config.method`` on ``manifest`` into ``run_dir`` (resuming when asked).

    Randomness: model initialisation and dropout draw from torch's generator, seeded
    from ``config.seed`` (and the rank) inside a forked RNG scope, so the caller's global
    RNG is untouched; data crops and order are functions of the seed alone.
    """
    if config.train.deterministic:
        # cuBLAS needs this before CUDA starts to run deterministically; harmless on CPU.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
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
                              on_step=on_step)
            return trainer.run()
    finally:
        torch.use_deterministic_algorithms(deterministic)
        torch.set_num_threads(threads)
        distributed.teardown(ctx)
