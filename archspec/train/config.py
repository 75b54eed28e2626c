"""What a run is, as one validated model: the command line's options are generated from it, so every
default and every limit is written once, here, and a bad value is refused before anything is created."""
from __future__ import annotations

import argparse
import re
from typing import Any, ClassVar, Literal, Optional, Sequence, TypeVar, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..spec.diagnostics import InputError, Mark
from ..spec.loader import marked
from ..spec.located import pydantic_problems

Optimizer = Literal["sgd", "nag", "adam"]
KVStore = Literal["device", "local", "dist_sync", "dist_async", "dist_sync_device", "dist_device_sync"]


class Config(BaseModel):
    """A training run's settings. Resuming refuses a run folder whose settings differ (except `MAY_CHANGE`)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    epochs: int = Field(10, ge=1, description="passes over the training data")
    batch_size: int = Field(128, ge=1, description="examples per step (split across --ctx devices)")
    lr: float = Field(0.1, gt=0, description="learning rate (D2L's for GoogLeNet)")
    optimizer: Optimizer = Field("sgd", description="the optimizer")
    momentum: float = Field(0.0, ge=0, lt=1, description="for sgd and nag (nag uses 0.9 when it is 0)")
    weight_decay: float = Field(0.0, ge=0, description="L2 weight decay")
    resize: Optional[int] = Field(None, ge=1, le=4096, description="set the spec's input to NxN (images are "
                                                                   "always resized to the spec's input, as "
                                                                   "D2L's resize=96)")
    seed: int = Field(0, ge=0, lt=2**32, description="data order, initial weights and dropout masks")
    data: Literal["fashion-mnist"] = Field("fashion-mnist", description="dataset, loaded as D2L does")
    data_dir: Optional[str] = Field(None, description="read the data from DIR instead of downloading: IDX files "
                                                      "(train-images-idx3-ubyte[.gz], ...), or class folders of "
                                                      "images (DIR/train/CLASS/*.png and DIR/test/CLASS/*.png, or "
                                                      "DIR/CLASS/*.png with --test-fraction)")
    test_fraction: Optional[float] = Field(None, gt=0, lt=1, description="with --data-dir of class folders "
                                                                         "(no train/ and test/): the fraction of "
                                                                         "each class held out for testing")
    checkpoint_every: int = Field(0, ge=0, description="also checkpoint every N steps (0: at the end of each "
                                                       "epoch only)")
    keep: int = Field(3, ge=1, description="checkpoints kept")
    ctx: str = Field("cpu", description="cpu, gpu:0 or gpu:0,1 (batches split across them)")
    kvstore: KVStore = Field("device", description="how gradients are combined; dist_* run under `archspec "
                                                   "launch`")
    precision: Literal["fp32", "bf16"] = Field("fp32", description="bf16: mixed precision, convolutions and dense "
                                                                   "layers in bfloat16, float32 weights and "
                                                                   "updates (CPUs with AVX-512 BF16)")

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
                                                      "kvstore"})
    #: short command-line names kept from earlier releases
    FLAGS: ClassVar[dict[str, str]] = {"weight_decay": "--wd"}

    def input_overrides(self) -> dict[str, int]:
        """The spec's input as --resize sets it: {"input.height": N, "input.width": N}, or nothing."""
        return {"input.height": self.resize, "input.width": self.resize} if self.resize else {}

    @field_validator("ctx")
    @classmethod
    def _known_devices(cls, value: str) -> str:
        if not re.fullmatch(r"cpu|(cpu|gpu):\d+(,(gpu:)?\d+)*", value):
            raise ValueError("expected cpu, gpu:0 or gpu:0,1")
        return value

    def optimizer_params(self) -> dict[str, float]:
        params = {"learning_rate": self.lr, "wd": self.weight_decay}
        if self.optimizer in ("sgd", "nag") and (self.momentum or self.optimizer == "nag"):
            params["momentum"] = self.momentum or 0.9
        return params


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
        if get_origin(annotation) is not Literal:
            annotation = next((a for a in get_args(annotation) if a is not type(None)), annotation)
        choices = get_args(annotation) if get_origin(annotation) is Literal else None
        kind: Any = str if choices else annotation
        if kind is bool:  # a switch: --strict
            parser.add_argument(*flags, dest=name, action="store_true", default=info.default, help=info.description)
            continue
        metavar = None if choices else {int: "N", float: "X"}.get(kind, name.split("_")[-1].upper())
        default = f" (default {info.default})" if info.default is not None else ""
        parser.add_argument(*flags, dest=name, type=kind, default=info.default, choices=choices, metavar=metavar,
                            help=f"{info.description}{default}")


def from_options(values: dict[str, Any], fields: Sequence[str]) -> Config:
    """The `Config` of parsed options; an `InputError` naming the option and what it expects."""
    return model_from_options(Config, values, fields)


Model = TypeVar("Model", bound=BaseModel)


def model_from_options(model: type[Model], values: dict[str, Any], fields: Sequence[str]) -> Model:
    """`model` made of parsed options; an `InputError` naming the option and what it expects."""
    chosen = {name: values[name] for name in fields}
    try:
        return model(**chosen)
    except ValidationError as err:
        problems = pydantic_problems(err, marked(chosen, Mark("<options>", 1, 1)), ())
        raise InputError("; ".join(f"--{str(p.path[0]).replace('_', '-')}: {p.message}" for p in problems)) from None
