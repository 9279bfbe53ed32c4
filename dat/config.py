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
    "METHODS", "PRESETS", "preset", "config_from_dict", "saved_with_defaults", "model_config_from_dict", "method_stages", "uses_target", "is_adversarial",
]

# The four methods compared in the paper's setting (see :func:`method_stages`).
METHODS = ("source-only", "multicondition", "dat-no-dc-pretrain", "dat", "consistency")


@dataclass
class ModelConfig:
    """Architecture of FE, LP and DC. Saved in every checkpoint and checked on load.

    ``frontend='samplecnn'`` is CLMR's raw-waveform SampleCNN (:mod:`dat.models.sample_cnn`;
    ``channels`` are its conv widths, ``first_stride`` its stem, the input length follows
    from them). ``frontend='logmel'`` is a log-mel spectrogram and a small 2D CNN
    (:mod:`dat.models.log_mel_cnn`; ``channels`` are its block widths, the input length is
    ``input_samples``).
    """

    sample_rate: int = 22050
    frontend: Literal["samplecnn", "logmel"] = "samplecnn"
    first_stride: int = 3                      # SampleCNN: the stem conv's kernel and stride
    channels: tuple[int, ...] = (128, 128, 128, 256, 256, 256, 256, 256, 256, 512)
    embedding_dim: int = 512                   # SampleCNN: the last conv's width; logmel: channels[-1]
    input_samples: int = 59049                 # logmel: samples per model input (SampleCNN derives its own)
    n_fft: int = 1024                          # logmel: STFT size
    hop_length: int = 512                      # logmel: STFT hop
    n_mels: int = 64                           # logmel: mel bands
    lp_hidden: int = 0                         # 0: linear LP; >0: one hidden layer of this width
    lp_dropout: float = 0.5                    # CLMR's supervised dropout, before the LP
    dc_hidden: int = 1024                      # width of the DC's two hidden layers
    dc_mode: Literal["binary", "category"] = "binary"  # clean/noisy, or clean + one class per category

    @property
    def num_blocks(self) -> int:
        """SampleCNN: conv + pool blocks after the stem (``len(channels) - 1``)."""
        return len(self.channels) - 1

    @property
    def input_length(self) -> int:
        """Samples per model input. SampleCNN: every block divides the length by 3 down to one frame."""
        if self.frontend == "logmel":
            return self.input_samples
        return self.first_stride * 3 ** self.num_blocks

    def validate(self) -> None:
        if self.first_stride < 1 or len(self.channels) < 2 or min(self.channels) < 1:
            raise DatError("model: first_stride >= 1 and at least two positive channel counts are needed")
        if self.embedding_dim < 1 or self.lp_hidden < 0 or self.dc_hidden < 1:
            raise DatError("model: embedding_dim and dc_hidden must be >= 1, lp_hidden >= 0")
        if not 0.0 <= self.lp_dropout < 1.0:
            raise DatError(f"model.lp_dropout={self.lp_dropout}: must be in [0, 1)")
        if self.frontend == "logmel":
            self._validate_logmel()

    def _validate_logmel(self) -> None:
        if self.embedding_dim != self.channels[-1]:
            raise DatError(f"model: with frontend 'logmel' the embedding is the last block's width; set "
                           f"embedding_dim={self.channels[-1]}")
        if min(self.n_fft, self.hop_length, self.n_mels) < 1 or self.n_fft > self.input_samples:
            raise DatError("model: n_fft, hop_length and n_mels must be >= 1 and n_fft <= input_samples")
        side = min(self.n_mels, 1 + self.input_samples // self.hop_length)
        if side < 2 ** len(self.channels):
            raise DatError(f"model: {len(self.channels)} logmel blocks halve a {side}-pixel side "
                           f"{len(self.channels)} times; use fewer channels or more n_mels / input_samples")


@dataclass
class DataConfig:
    """Where audio comes from and how it is batched."""

    audio: Literal["mix", "rendered"] = "mix"  # mix on the fly with noisemix, or read rendered files
    render_dir: str = ""                      # with audio='rendered': the `noisemix render` output
    cache_dir: str = ""                       # decoded-source cache; '' = noisemix's, shared by all runs
    batch_size: int = 16                      # per process (DDP multiplies it by the world size)
    eval_batch_size: int = 32
    num_workers: int = 2                      # loader workers per domain; 0 loads in the main process
    fold: int = -1                            # a `noisemix build --folds K` manifest: the test fold (-1: its own split)
    labelled_share: float = 1.0               # share of the train split's pieces whose tags are read; the rest is
                                              # unlabelled music (pieces drawn by a hash of their group, not the seed)
    target_pieces: Literal["all", "labelled", "unlabelled"] = "all"  # whose noisy train rows are the target domain


@dataclass
class StageConfig:
    """Budget and optimiser (AdamW) of one training stage."""

    steps: int = 1000
    lr: float = 1e-3
    fe_lr_scale: float = 1.0                  # FE learning rate = lr x this (the reference uses 0.1 when adapting)
    warmup_steps: int = 0
    lr_schedule: Literal["constant", "cosine"] = "constant"
    weight_decay: float = 0.0                 # decoupled (AdamW)
    grad_clip_norm: float = 0.0               # clip the global gradient norm to this; 0: no clipping


@dataclass
class TrainConfig:
    """The three stages, DAT's trade-off and the bookkeeping around them.

    Stage 3 minimises ``L_LP(src) + dc_weight * (L_DC(src) + L_DC(trg)) / 2`` (the DC loss
    is the mean over the concatenated source + target batch, as in tllib's DANN), and the
    GRL gives the FE ``-lambda`` times the DC's gradient, with ``lambda`` ramped from 0 to
    ``lambda_max`` over a fixed horizon of ``lambda_horizon_steps`` stage-3 steps (the
    DANN ramp ``2 / (1 + exp(-10 p)) - 1``, ``p = step / horizon``, capped at 1).
    """

    stage1: StageConfig = field(default_factory=StageConfig)
    stage2: StageConfig = field(default_factory=lambda: StageConfig(steps=200))
    stage3: StageConfig = field(default_factory=lambda: StageConfig(steps=1000, lr=1e-3, fe_lr_scale=0.1))
    lambda_schedule: Literal["constant", "dann"] = "dann"  # GRL coefficient over stage-3 steps
    lambda_max: float = 1.0
    lambda_horizon_steps: int = 10000         # the ramp's length (tllib: alpha 1 over 1000 iterations = 10000 here)
    dc_weight: float = 1.0                    # trade-off: weight of the mean DC loss in the stage-3 loss
    consistency_weight: float = 1.0           # consistency: weight of BCE(student(noisy), teacher(clean))
    consistency_teacher: Literal["stage1", "ema"] = "stage1"  # frozen stage-1 model, or its EMA over stage 3
    teacher_ema_decay: float = 0.999          # ema: teacher <- d * teacher + (1 - d) * student after each step
    eval_every: int = 100                     # validation (and best-model) interval, in steps
    patience: int = 5                         # evaluations without gain over the stage's best before it stops
    checkpoint_every: int = 100               # full-state checkpoint interval, in steps
    log_every: int = 10                       # per-step CSV / TensorBoard interval
    tensorboard: bool = True
    amp: Literal["auto", "off", "bf16", "fp16"] = "auto"  # auto: bf16 (or fp16) on CUDA, off on CPU
    deterministic: bool = False               # torch deterministic algorithms (bit-exact resume on CPU)
    threads: int = 0                          # torch intra-op threads; 0 keeps torch's default
    progress: bool = True                     # progress bars and validation lines on stderr


@dataclass
class RunConfig:
    method: Literal["source-only", "multicondition", "dat-no-dc-pretrain", "dat", "consistency"] = "dat"
    seed: int = 0
    preset: str = "cpu"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


def check_stages(method: str, stages, has_trained_fe: bool = True, run_dir=None) -> None:
    """Refuse ``--stage`` choices that cannot run: a stage the method does not have, or a
    later stage without a trained FE (before any data is read, where the CLI can tell)."""
    extra = sorted(set(stages) - set(method_stages(method)))
    if extra:
        raise DatError(f"method {method} has no stage {extra[0]} (its stages: {method_stages(method)})")
    first = min(stages, default=1)
    if first != 1 and not has_trained_fe:
        raise DatError(f"stage {first} needs a trained FE: run stage 1 in {run_dir} first "
                       f"or pass --pretrained CLMR_CHECKPOINT")


def method_stages(method: str, pretrained_fe: bool = False) -> list[int]:
    """The stages a method runs, in order.

    Every method starts from the same stage 1 (FE + LP on labelled clean music) and then
    gets the same number of stage-3 updates from stage 1's best model, on the same batches
    of source (and, where it uses them, target) audio: ``source-only`` goes on with clean
    music only, ``multicondition`` trains the LP on clean and on the *labelled* noisy rows
    that are DAT's (unlabelled) target domain, ``consistency`` asks the model to tag each
    unlabelled noisy crop as the frozen stage-1 model tags the clean music of the same
    window (no labels on the noisy side), ``dat-no-dc-pretrain`` trains adversarially,
    and ``dat`` first pre-trains the DC on the frozen FE (stage 2). With a pretrained FE,
    stage 1 is skipped, as in the paper.
    """
    if method not in METHODS:
        raise DatError(f"method {method!r}: choose one of {', '.join(METHODS)}")
    stages = [1, 2, 3] if method == "dat" else [1, 3]
    return [s for s in stages if not (pretrained_fe and s == 1)]


def uses_target(method: str) -> bool:
    """Methods whose stage 3 reads the noisy rows (as unlabelled target, or labelled for multicondition)."""
    return method != "source-only"


def is_adversarial(method: str) -> bool:
    return method in ("dat", "dat-no-dc-pretrain")


def _full() -> RunConfig:
    return RunConfig(preset="full", data=DataConfig(batch_size=48))


def _cpu() -> RunConfig:
    """The log-mel CNN: converges on two CPU cores in minutes (see the module docstring)."""
    model = ModelConfig(frontend="logmel", channels=(8, 16, 32, 64, 128), embedding_dim=128, dc_hidden=128)
    clip = 5.0
    train = TrainConfig(stage1=StageConfig(steps=4000, lr=1e-3, weight_decay=1e-4, grad_clip_norm=clip),
                        stage2=StageConfig(steps=200, lr=1e-3, weight_decay=1e-4, grad_clip_norm=clip),
                        stage3=StageConfig(steps=600, lr=1e-3, fe_lr_scale=0.1, weight_decay=1e-4,
                                           grad_clip_norm=clip),
                        lambda_horizon_steps=2000, eval_every=100, patience=5, checkpoint_every=100, threads=1)
    return RunConfig(preset="cpu", model=model, data=DataConfig(batch_size=32, eval_batch_size=64, num_workers=0),
                     train=train)


def _cpu_samplecnn() -> RunConfig:
    """SampleCNN with a quarter of CLMR's channels: raw audio on a CPU, slowly (the earlier demo preset)."""
    model = ModelConfig(channels=(32, 32, 32, 64, 64, 64, 64, 64, 64, 128), embedding_dim=128, dc_hidden=256)
    train = TrainConfig(stage1=StageConfig(steps=300), stage2=StageConfig(steps=60),
                        stage3=StageConfig(steps=300, lr=5e-4, fe_lr_scale=0.1), lambda_horizon_steps=1000,
                        eval_every=50, checkpoint_every=50, threads=1)
    return RunConfig(preset="cpu-samplecnn", model=model, data=DataConfig(batch_size=16, num_workers=0), train=train)


def _tiny() -> RunConfig:
    model = ModelConfig(channels=(8, 8, 16, 16, 16, 32, 32), embedding_dim=32, dc_hidden=32)
    train = TrainConfig(stage1=StageConfig(steps=12, lr=3e-3), stage2=StageConfig(steps=4, lr=3e-3),
                        stage3=StageConfig(steps=8, lr=3e-3, fe_lr_scale=0.1), lambda_horizon_steps=16,
                        eval_every=6, checkpoint_every=4, log_every=1, tensorboard=False, threads=1)
    return RunConfig(preset="tiny", model=model, data=DataConfig(batch_size=8, eval_batch_size=16, num_workers=0),
                     train=train)


PRESETS = {"full": _full, "cpu": _cpu, "cpu-samplecnn": _cpu_samplecnn, "tiny": _tiny}


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


def saved_with_defaults(saved: dict) -> dict:
    """A config saved by an earlier dat, with the fields added since at their defaults (which
    are what that dat did), so a run keeps resuming and importing across versions."""
    return merge_values(RunConfig().to_dict(), saved)


def merge_values(base: dict, override: dict) -> dict:
    """``override`` laid over ``base``, nested dicts merged key by key."""
    out = dict(base)
    for key, value in override.items():
        out[key] = merge_values(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def model_config_from_dict(values: dict) -> ModelConfig:
    """A saved architecture (a checkpoint's ``model_config``): fields it lacks take
    :class:`ModelConfig`'s defaults, never a preset's, so older checkpoints load as they were."""
    model = _build(ModelConfig, dict(values), "model")
    model.validate()
    return model


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
        if stage.fe_lr_scale < 0 or stage.weight_decay < 0 or stage.grad_clip_norm < 0:
            raise DatError(f"config train.{name}: fe_lr_scale, weight_decay and grad_clip_norm must be >= 0")
    if config.train.lambda_horizon_steps < 1 or config.train.lambda_max < 0:
        raise DatError("config train: lambda_horizon_steps >= 1 and lambda_max >= 0 are needed")
    if config.data.batch_size < 1 or config.data.eval_batch_size < 1 or config.data.num_workers < 0:
        raise DatError("config data: batch sizes must be >= 1 and num_workers >= 0")
    if config.train.threads < 0:
        raise DatError("config train.threads: must be >= 0 (0 keeps torch's default)")
    if min(config.train.eval_every, config.train.checkpoint_every, config.train.log_every) < 1:
        raise DatError("config train: eval_every, checkpoint_every and log_every must be >= 1")
    if config.data.audio == "rendered" and not config.data.render_dir:
        raise DatError("config data.audio='rendered' needs data.render_dir (the `noisemix render` output)")
    return config
