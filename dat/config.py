"""Typed run configuration: every field is read by the code, and the resolved config is
saved with each run (``config.json``) so a run can be resumed or audited.

Three presets exist:

``full``
    SampleCNN exactly as in CLMR (59049 samples at 22,050 Hz, 512-d embedding, about
    2.39 M parameters). Meant for GPUs: on a 2-core CPU it trains at 1.5 clips/s
    (``benchmarks/bench_dat_loader.py``).
``cpu``
    The same depth (so the same 59049-sample input and receptive field) with a quarter
    of the channels (32 ... 128, 128-d embedding, about 0.15 M parameters), small
    enough to train on a CPU. Used by the demo.
``tiny``
    Six blocks (2187-sample input, 0.1 s) and 8 ... 32 channels, for tests.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass, field, fields
from typing import Literal, get_args, get_origin, get_type_hints

from .errors import DatError

__all__ = [
    "ModelConfig", "DataConfig", "StageConfig", "TrainConfig", "RunConfig",
    "METHODS", "PRESETS", "preset", "config_from_dict", "method_stages",
]

# The four methods compared in the paper's setting (see :func:`method_stages`).
METHODS = ("source-only", "multicondition", "dat-no-dc-pretrain", "dat")


@dataclass
class ModelConfig:
    """Architecture of FE, LP and DC. Saved in every checkpoint and checked on load."""

    sample_rate: int = 22050
    first_stride: int = 3                      # the stem conv's kernel and stride
    channels: tuple[int, ...] = (128, 128, 128, 256, 256, 256, 256, 256, 256, 512)
    embedding_dim: int = 512                   # the last conv's width = the embedding size
    lp_hidden: int = 0                         # 0: linear LP; >0: one hidden layer of this width
    lp_dropout: float = 0.5                    # CLMR's supervised dropout, before the LP
    dc_hidden: int = 1024                      # width of the DC's two hidden layers
    dc_mode: Literal["binary", "category"] = "binary"  # clean/noisy, or clean + one class per category

    @property
    def num_blocks(self) -> int:
        """Conv + pool blocks after the stem (``len(channels) - 1``)."""
        return len(self.channels) - 1

    @property
    def input_length(self) -> int:
        """Samples per model input: every block divides the length by 3 down to one frame."""
        return self.first_stride * 3 ** self.num_blocks

    def validate(self) -> None:
        if self.first_stride < 1 or len(self.channels) < 2 or min(self.channels) < 1:
            raise DatError("model: first_stride >= 1 and at least two positive channel counts are needed")
        if self.embedding_dim < 1 or self.lp_hidden < 0 or self.dc_hidden < 1:
            raise DatError("model: embedding_dim and dc_hidden must be >= 1, lp_hidden >= 0")
        if not 0.0 <= self.lp_dropout < 1.0:
            raise DatError(f"model.lp_dropout={self.lp_dropout}: must be in [0, 1)")


@dataclass
class DataConfig:
    """Where audio comes from and how it is batched."""

    audio: Literal["mix", "rendered"] = "mix"  # mix on the fly with noisemix, or read rendered files
    render_dir: str = ""                      # with audio='rendered': the `noisemix render` output
    cache_dir: str = ""                       # decoded-source cache; '' = noisemix's, shared by all runs
    batch_size: int = 16                      # per process (DDP multiplies it by the world size)
    eval_batch_size: int = 32
    num_workers: int = 2                      # loader workers per domain; 0 loads in the main process


@dataclass
class StageConfig:
    """Budget and optimiser of one training stage."""

    steps: int = 1000
    lr: float = 1e-3
    warmup_steps: int = 0
    lr_schedule: Literal["constant", "cosine"] = "constant"
    weight_decay: float = 0.0


@dataclass
class TrainConfig:
    """The three stages, DAT's trade-off and the bookkeeping around them."""

    stage1: StageConfig = field(default_factory=StageConfig)
    stage2: StageConfig = field(default_factory=lambda: StageConfig(steps=200))
    stage3: StageConfig = field(default_factory=lambda: StageConfig(steps=1000, lr=3e-4))
    lambda_schedule: Literal["constant", "dann"] = "dann"  # GRL coefficient over stage-3 progress
    lambda_max: float = 1.0
    dc_weight: float = 1.0                    # weight of L_DC(src) + L_DC(trg) in the stage-3 loss
    eval_every: int = 100                     # validation (and best-model) interval, in steps
    patience: int = 5                         # evaluations without PR-AUC gain before stopping a stage
    checkpoint_every: int = 100               # full-state checkpoint interval, in steps
    log_every: int = 10                       # per-step CSV / TensorBoard interval
    tensorboard: bool = True
    amp: Literal["auto", "off", "bf16", "fp16"] = "auto"  # auto: bf16 (or fp16) on CUDA, off on CPU
    deterministic: bool = False               # torch deterministic algorithms (bit-exact resume on CPU)
    threads: int = 0                          # torch intra-op threads; 0 keeps torch's default
    progress: bool = True                     # tqdm progress bars


@dataclass
class RunConfig:
    method: Literal["source-only", "multicondition", "dat-no-dc-pretrain", "dat"] = "dat"
    seed: int = 0
    preset: str = "cpu"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


def method_stages(method: str, pretrained_fe: bool = False) -> list[int]:
    """The stages a method runs, in order.

    Every method gets the same FE + LP update budget (stage 1 + stage 3 steps): the
    single-stage methods run stage 1 for that many steps. Stage 2 only trains the DC.
    With a pretrained FE, stage 1 of the DAT methods is skipped, as in the paper.
    """
    if method not in METHODS:
        raise DatError(f"method {method!r}: choose one of {', '.join(METHODS)}")
    if method in ("source-only", "multicondition"):
        return [1]
    stages = [1, 2, 3] if method == "dat" else [1, 3]
    return [s for s in stages if not (pretrained_fe and s == 1)]


def _full() -> RunConfig:
    return RunConfig(preset="full", data=DataConfig(batch_size=48))


def _cpu() -> RunConfig:
    model = ModelConfig(channels=(32, 32, 32, 64, 64, 64, 64, 64, 64, 128), embedding_dim=128, dc_hidden=256)
    train = TrainConfig(stage1=StageConfig(steps=300), stage2=StageConfig(steps=60),
                        stage3=StageConfig(steps=300, lr=5e-4), eval_every=50, checkpoint_every=50)
    return RunConfig(preset="cpu", model=model, data=DataConfig(batch_size=16), train=train)


def _tiny() -> RunConfig:
    model = ModelConfig(channels=(8, 8, 16, 16, 16, 32, 32), embedding_dim=32, dc_hidden=32)
    train = TrainConfig(stage1=StageConfig(steps=12, lr=3e-3), stage2=StageConfig(steps=4, lr=3e-3),
                        stage3=StageConfig(steps=8, lr=3e-3), eval_every=6, checkpoint_every=4,
                        log_every=1, tensorboard=False, progress=False, threads=1)
    return RunConfig(preset="tiny", model=model, data=DataConfig(batch_size=8, eval_batch_size=16, num_workers=0),
                     train=train)


PRESETS = {"full": _full, "cpu": _cpu, "tiny": _tiny}


def preset(name: str) -> RunConfig:
    if name not in PRESETS:
        raise DatError(f"preset {name!r}: choose one of {', '.join(PRESETS)}")
    return PRESETS[name]()


def _coerce(value, hint, where: str):
    """Convert a JSON value to the dataclass field type ``hint``; a clear error otherwise."""
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise DatError(f"config {where}: expected an object")
        return _build(hint, value, where)
    origin = get_origin(hint)
    if origin is Literal:
        if value not in get_args(hint):
            raise DatError(f"config {where}={value!r}: choose one of {', '.join(map(str, get_args(hint)))}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise DatError(f"config {where}: expected a list of integers")
        return tuple(value)
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if hint in (int, bool, str) and type(value) is hint:
        return value
    raise DatError(f"config {where}={value!r}: expected {getattr(hint, '__name__', hint)}")


def _build(cls, values: dict, where: str):
    hints = get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise DatError(f"config {where or 'top level'}: unknown field(s) {', '.join(unknown)}")
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}".lstrip(".")) for k, v in values.items()}
    return cls(**kwargs)


def merge_values(base: dict, override: dict) -> dict:
    """``override`` laid over ``base``, nested dicts merged key by key."""
    out = dict(base)
    for key, value in override.items():
        out[key] = merge_values(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def config_from_dict(values: dict, base: RunConfig | None = None) -> RunConfig:
    """``values`` (possibly partial, e.g. from a JSON file) laid over ``base`` (default: its preset)."""
    if not isinstance(values, dict):
        raise DatError("config: expected a JSON object")
    if base is None:
        base = preset(values.get("preset", "cpu"))
    config = _build(RunConfig, merge_values(base.to_dict(), values), "")
    config.model.validate()
    for name in ("stage1", "stage2", "stage3"):
        stage = getattr(config.train, name)
        if stage.steps < 0 or stage.lr <= 0 or stage.warmup_steps < 0:
            raise DatError(f"config train.{name}: steps >= 0, lr > 0 and warmup_steps >= 0 are needed")
    if config.data.batch_size < 1 or config.data.eval_batch_size < 1 or config.data.num_workers < 0:
        raise DatError("config data: batch sizes must be >= 1 and num_workers >= 0")
    if config.train.threads < 0:
        raise DatError("config train.threads: must be >= 0 (0 keeps torch's default)")
    if min(config.train.eval_every, config.train.checkpoint_every, config.train.log_every) < 1:
        raise DatError("config train: eval_every, checkpoint_every and log_every must be >= 1")
    if config.data.audio == "rendered" and not config.data.render_dir:
        raise DatError("config data.audio='rendered' needs data.render_dir (the `noisemix render` output)")
    return config
