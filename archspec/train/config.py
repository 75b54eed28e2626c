"""What a run is, as one validated model: the command line's options are generated from it, so every
default and every limit is written once, here, and a bad value is refused before anything is created."""
from __future__ import annotations

import argparse
import os
import re
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal, Optional, Sequence, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from ..spec import input_overrides
from ..spec.diagnostics import InputError, Mark
from ..spec.loader import marked
from ..spec.located import pydantic_problems
from .transforms import Transforms

Optimizer = Literal["sgd", "nag", "adam"]
Schedule = Literal["constant", "step", "multistep", "cosine", "poly"]
MAX_EPOCHS = 100_000  # a run that long is a typo (10^23 was accepted, and would never end)
# lr and wd: far beyond any that trains (sgd, nag and adam diverge at once); MXNet's optimizers read them as 32-bit
# floats, and 1e308 failed in its parser
MAX_RATE = 1e4
# below the smallest normal 32-bit float a rate is 0 (or a denormal) in MXNet's optimizers: nothing would train
MIN_RATE = 1.1754944e-38
MAX_BATCH = 1 << 16  # a streamed batch is decoded whole: 10^30 was accepted (Goyal et al. train ImageNet at 8,192)
# steps (between checkpoints) and checkpoints (kept): beyond any run (ImageNet's 90 epochs at batch 256 are 450,000
# steps) and the 8 digits of a checkpoint's name (step-00000042); 10^30 was accepted, and the run never checkpointed
MAX_STEPS = 10**8 - 1
KVStore = Literal["device", "local", "dist_sync", "dist_async", "dist_sync_device", "dist_device_sync"]


@dataclass(frozen=True)
class Devices:
    """The devices a run uses (`--ctx`): one kind, and its device numbers (`cpu` alone is CPU 0)."""

    kind: Literal["cpu", "gpu"]
    ids: tuple[int, ...]


def parse_devices(text: str) -> Devices:
    """`cpu`, `cpu:0`, `gpu:0`, `gpu:0,1` or `gpu:0,gpu:1` (every device of one kind); a ValueError otherwise
    (`cpu:0,gpu:1` mixes kinds: refused, not read as two CPUs)."""
    if text == "cpu":
        return Devices("cpu", (0,))
    kind, _, rest = text.partition(":")
    items = [item.removeprefix(f"{kind}:") for item in rest.split(",")]
    if kind not in ("cpu", "gpu") or not all(re.fullmatch(r"\d+", item) for item in items):
        raise ValueError("expected cpu, gpu:0 or gpu:0,1")
    return Devices("gpu" if kind == "gpu" else "cpu", tuple(int(item) for item in items))


@dataclass(frozen=True)
class Commands:
    """A `Config` field's marker (`Annotated[X, Commands(...)]`, or `Field` metadata): the commands besides `train`
    and `search` that take it as an option. `Commands()` alone: a recipe's setting, no option at all."""

    names: tuple[str, ...] = ("train", "search")


DATA = Commands(("train", "search", "evaluate"))  # the data read and how it is batched: evaluate's options too
RECIPE_ONLY = Commands(())


class Config(BaseModel):
    """A training run's settings. Resuming refuses a run folder whose settings differ (except `MAY_CHANGE`)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    epochs: int = Field(10, ge=1, le=MAX_EPOCHS, description="passes over the training data (at most 100,000)")
    batch_size: Annotated[int, DATA] = Field(128, ge=1, le=MAX_BATCH, description="examples per step (split across "
                                                                               "--ctx devices; at most 65,536)")
    lr: float = Field(0.1, gt=0, le=MAX_RATE, description="learning rate (D2L's for GoogLeNet)")
    optimizer: Optimizer = Field("sgd", description="the optimizer")
    momentum: float = Field(0.0, ge=0, lt=1, description="for sgd and nag (nag uses 0.9 when it is 0)")
    weight_decay: float = Field(0.0, ge=0, le=MAX_RATE, description="L2 weight decay")
    resize: Optional[int] = Field(None, ge=1, le=4096, description="set the spec's input to NxN (images are "
                                                                   "always resized to the spec's input, as "
                                                                   "D2L's resize=96)")
    seed: int = Field(0, ge=0, lt=2**32, description="data order, initial weights and dropout masks")
    data: Annotated[Literal["fashion-mnist"], DATA] = Field("fashion-mnist", description="dataset, loaded as D2L does")
    data_dir: Annotated[Optional[str], DATA] = Field(None, description="read the data from DIR instead of downloading: IDX files "
                                                      "(train-images-idx3-ubyte[.gz], ...), or class folders of "
                                                      "images (DIR/train/CLASS/*.png and DIR/test/CLASS/*.png, or "
                                                      "DIR/CLASS/*.png with --test-fraction)")
    test_fraction: Annotated[Optional[float], DATA] = Field(None, gt=0, lt=1, description="with --data-dir of class folders "
                                                                         "(no train/ and test/): the fraction of "
                                                                         "each class held out for testing")
    checkpoint_every: int = Field(0, ge=0, le=MAX_STEPS, description="also checkpoint every N steps (0: at the end "
                                                                     "of each epoch only; at most 99,999,999)")
    keep: int = Field(3, ge=1, le=MAX_STEPS, description="checkpoints kept")
    ctx: Annotated[str, DATA] = Field("cpu", description="cpu, gpu:0 or gpu:0,1 (batches split across them)")
    kvstore: KVStore = Field("device", description="how gradients are combined; dist_* run under `archspec "
                                                   "launch`")
    precision: Literal["fp32", "bf16"] = Field("fp32", description="bf16: mixed precision, convolutions and dense "
                                                                   "layers in bfloat16, float32 weights and "
                                                                   "updates (CPUs with AVX-512 BF16)")
    # the recipe's schedule and loss (`optimization.py`)
    schedule: Schedule = Field("constant", description="learning-rate schedule (MXNet's lr_scheduler): step "
                                                       "(x lr_factor every lr_epochs[0] epochs), multistep (at each "
                                                       "of lr_epochs), cosine or poly (to final_lr at the end)")
    lr_epochs: tuple[Annotated[int, Field(le=MAX_EPOCHS)], ...] = Field(
        (), validate_default=True, description="step: the period in epochs; multistep: the epochs at which the rate "
                                               "is multiplied by lr_factor (30,60,80)")
    lr_factor: float = Field(0.1, gt=0, le=1, description="what step and multistep multiply the rate by")
    final_lr: float = Field(0.0, ge=0, description="the rate cosine and poly end at")
    power: float = Field(2.0, gt=0, description="poly's exponent")
    warmup_epochs: float = Field(0.0, ge=0, description="linear warm-up from warmup_lr to lr over these epochs "
                                                        "(Goyal et al., 2017)")
    warmup_lr: float = Field(0.0, ge=0, description="the rate warm-up starts at")
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="label smoothing epsilon (Szegedy et al., 2016)")
    no_bias_decay: bool = Field(False, description="no weight decay on biases and batch norm's gamma and beta")
    # the recipe's data pipeline (`transforms.py`, `stream.py`)
    # at most 64 transforms: a recipe of thousands would pass validation and then crawl through every image
    augment: Annotated[Transforms, RECIPE_ONLY] = Field((), max_length=64, description="transforms of training "
                                                        "images, in order (a recipe's list)")
    evaluate: Annotated[Transforms, RECIPE_ONLY] = Field((), max_length=64, description="transforms of test images "
                                                         "(evaluation, prediction)")
    loader: Literal["auto", "memory", "stream"] = Field("auto", description="memory: decode every image before "
                                                                           "training; stream: decode batches in "
                                                                           "worker processes; auto: memory for "
                                                                           "data that fits in 1 GiB, else stream")
    workers: int = Field(0, ge=0, le=64, description="decoding processes when streaming (0: up to 4, one a core)")
    prefetch: int = Field(4, ge=1, le=64, description="batches decoded ahead when streaming (bounds the memory)")

    init: Optional[str] = Field(None, description="start from these parameters (a .params file, a run folder, or "
                                                  "`archspec convert`'s output): every array whose path and shape "
                                                  "match; the others as the spec initialises them")
    strict: bool = Field(False, description="with --init: refuse parameters that differ from the network's in any "
                                            "array")
    freeze: Optional[str] = Field(None, description="stages (b1,b2) or parameter-path globs (b3.*) left untrained: "
                                                    "no gradient, batch norm on its running statistics")
    lr_mult: Optional[str] = Field(None, description="learning-rate factors by stage or glob, e.g. head=10 (D2L's "
                                                     "fine-tuning)")

    #: settings a resumed run may change
    MAY_CHANGE: ClassVar[frozenset[str]] = frozenset({"epochs", "checkpoint_every", "keep", "data_dir", "ctx",
                                                      "kvstore", "workers", "prefetch"})
    #: short command-line names kept from earlier releases
    FLAGS: ClassVar[dict[str, str]] = {"weight_decay": "--wd"}

    def input_overrides(self) -> dict[str, int]:
        """The spec's input as --resize sets it: {"input.height": N, "input.width": N}, or nothing."""
        return input_overrides(height=self.resize, width=self.resize)

    @field_validator("lr")
    @classmethod
    def _a_32_bit_rate(cls, value: float) -> float:
        if 0 < value < MIN_RATE:
            raise ValueError(f"a rate that is 0 in the 32-bit floats of MXNet's optimizers (nothing would train); "
                             f"expected at least {MIN_RATE:.2g}")
        return value

    @field_validator("lr_mult")
    @classmethod
    def _rate_factors(cls, value: Optional[str], info: ValidationInfo) -> Optional[str]:
        factors(value, info.data.get("lr"))  # the patterns are matched once the network is built
        return value

    @field_validator("kvstore")
    @classmethod
    def _launched(cls, value: str) -> str:
        """dist_* needs the processes `archspec launch` starts (MXNet's ps-lite reads DMLC_ROLE and friends)."""
        if value.startswith("dist") and "DMLC_ROLE" not in os.environ:
            raise ValueError(f"{value} runs under MXNet's launcher, which this process was not started by: "
                             f"archspec launch -n 2 -s 1 --launcher local -- archspec train ... --kvstore {value}")
        return value

    @field_validator("ctx")
    @classmethod
    def _known_devices(cls, value: str) -> str:
        parse_devices(value)  # the grammar's one parser: a ValueError says what it expects
        return value

    @property
    def devices(self) -> "Devices":
        """`ctx` as a value: the kind of device and its numbers."""
        return parse_devices(self.ctx)

    @field_validator("lr_epochs")
    @classmethod
    def _schedule_epochs(cls, epochs: tuple[int, ...], info: ValidationInfo) -> tuple[int, ...]:
        schedule = info.data.get("schedule")
        need = {"step": "one number, the period in epochs", "multistep": "increasing epochs"}.get(str(schedule))
        if need and (not epochs or min(epochs) < 1 or (schedule == "step" and len(epochs) != 1)
                     or list(epochs) != sorted(set(epochs))):
            raise ValueError(f"schedule {schedule} needs {need}")
        if epochs and not need:  # else a forgotten `schedule: multistep` trains at a constant rate, silently
            raise ValueError(f"applies to schedule step or multistep, not {schedule}")
        return epochs

    @field_validator("final_lr", "warmup_lr")
    @classmethod
    def _below_lr(cls, value: float, info: ValidationInfo) -> float:
        """Rates that must not exceed lr: a schedule decays to final_lr, a warm-up climbs from warmup_lr (MXNet's
        lr_scheduler refuses the latter only when training starts)."""
        lr = info.data.get("lr")
        if lr is not None and value > lr:
            raise ValueError(f"expected at most lr ({lr}), got {value}")
        return value

    @field_validator("warmup_epochs")
    @classmethod
    def _within_run(cls, value: float, info: ValidationInfo) -> float:
        epochs = info.data.get("epochs")
        if value and epochs is not None and value >= epochs:
            raise ValueError(f"a warm-up of {value:g} epoch(s) takes the whole run of {epochs}; make it shorter "
                             "than epochs (or 0)")
        return value

    def optimizer_params(self) -> dict[str, float]:
        params = {"learning_rate": self.lr, "wd": self.weight_decay}
        if self.optimizer in ("sgd", "nag") and (self.momentum or self.optimizer == "nag"):
            params["momentum"] = self.momentum or 0.9
        return params


def factors(text: Union[str, Sequence[str], None], lr: Optional[float] = None) -> dict[str, float]:
    """`head=10,b5=2` (`--lr-mult`): the learning-rate factor of each stage or glob, a finite number, 0 or more,
    whose rate (`lr` times it) stays within MAX_RATE (MXNet's parser failed on 1e307); an `InputError` naming
    the item otherwise."""
    items = text.split(",") if isinstance(text, str) else list(text or [])
    chosen: dict[str, float] = {}
    for item in (item.strip() for item in items if item.strip()):
        pattern, sep, value = item.partition("=")
        try:
            factor = float(value)
        except ValueError:
            factor = -1.0
        if not sep or not pattern.strip():
            raise InputError(f"--lr-mult {item}: expected STAGE=FACTOR such as head=10")
        if not 0 <= factor < float("inf"):  # nan too
            raise InputError(f"--lr-mult {item}: expected STAGE=FACTOR such as head=10, FACTOR a finite number, 0 "
                             "or more")
        if lr is not None and lr * factor > MAX_RATE:
            raise InputError(f"--lr-mult {item}: a rate of {lr:g} x {factor:g} = {lr * factor:g}, beyond "
                             f"{MAX_RATE:g}")
        chosen[pattern.strip()] = factor
    return chosen


def options(command: str) -> tuple[str, ...]:
    """The `Config` fields that `command` (train, search, evaluate) takes as options, in the model's order (its
    fields' `Commands` markers): a new field is a new option of train and search by itself."""
    def commands(info: Any) -> tuple[str, ...]:
        return next((m.names for m in info.metadata if isinstance(m, Commands)), Commands().names)

    return tuple(name for name, info in Config.model_fields.items() if command in commands(info))


def add_options(parser: argparse.ArgumentParser, fields: Sequence[str], model: type[BaseModel] = Config) -> None:
    """Command-line options for `fields` of `model` (a `Config`, or another run's settings such as a search's):
    `--batch-size N`, with the model's default, choices and description. Values are checked when the model is
    made (`from_options`), not by argparse."""
    short_flags: dict[str, str] = getattr(model, "FLAGS", {})
    for name in fields:
        info = model.model_fields[name]
        flag = "--" + name.replace("_", "-")
        flags = [flag, short_flags[name]] if name in short_flags else [flag]
        annotation = info.annotation
        if get_origin(annotation) is Union:  # Optional[X]: X
            annotation = next((a for a in get_args(annotation) if a is not type(None)), annotation)
        choices = get_args(annotation) if get_origin(annotation) is Literal else None
        default = f" (default {info.default})" if info.default not in (None, ()) else ""
        if annotation is bool:
            parser.add_argument(*flags, dest=name, action="store_true", default=argparse.SUPPRESS,
                                help=info.description)
            continue
        kind: Any = str if choices else _numbers if get_origin(annotation) is tuple else annotation
        metavar = None if choices else {int: "N", float: "X", _numbers: "N,N"}.get(kind, name.split("_")[-1].upper())
        # not given: absent, so that a recipe's value (`recipe.py`) or the model's default applies
        parser.add_argument(*flags, dest=name, type=kind, default=argparse.SUPPRESS, choices=choices,
                            metavar=metavar, help=f"{info.description}{default}")


def _numbers(text: str) -> tuple[str, ...]:
    """`30,60,80` -> ("30", "60", "80"); the model checks that they are numbers."""
    return tuple(part.strip() for part in text.split(",") if part.strip())


def from_options(values: dict[str, Any], fields: Sequence[str], recipe: Optional[dict[str, Any]] = None) -> Config:
    """The `Config` of parsed options over a recipe's values (`recipe.py`); an `InputError` naming the option and
    what it expects."""
    if not recipe:
        return model_from_options(Config, values, fields)
    given = {name: values[name] for name in fields if name in values}
    return model_from_options(Config, {**recipe, **given}, [*recipe, *given])


Model = TypeVar("Model", bound=BaseModel)


def model_from_options(model: type[Model], values: dict[str, Any], fields: Sequence[str]) -> Model:
    """`model` made of parsed options; an `InputError` naming the option and what it expects."""
    chosen = {name: values[name] for name in fields if name in values}
    try:
        return model(**chosen)
    except ValidationError as err:
        problems = pydantic_problems(err, marked(chosen, Mark("<options>", 1, 1)), ())
        raise InputError("; ".join(_named(f"--{str(p.path[0]).replace('_', '-')}", p.message)
                                   for p in problems)) from None


def _named(flag: str, message: str) -> str:
    """A problem of an option as `--flag: message`, unless the message names it already (`--lr-mult head=x: ...`,
    the parser's own words where it is also called outside a model)."""
    return message if message.startswith(flag + " ") else f"{flag}: {message}"
