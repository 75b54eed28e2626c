"""Runs: the programs users run on top of the Gluon backend. `config` (a run's settings, validated, and the
command-line options made from them; no MXNet), `loop` (train, evaluate), `checkpoints`, `folder` (the run
folder), `data` (Fashion-MNIST and IDX folders), `images` (class folders of images), `predict`, `d2l` (the book's
Classifier) and `launch` (MXNet's distributed launcher)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import gluon  # noqa: F401  first: it sets MXNet's thread count, before anything here imports MXNet
from .config import Config

if TYPE_CHECKING:
    from .checkpoints import latest_checkpoint
    from .loop import TrainingInterrupted, evaluate, parse_contexts, train

_LAZY = {"latest_checkpoint": "checkpoints", "TrainingInterrupted": "loop", "evaluate": "loop",
         "parse_contexts": "loop", "train": "loop"}


def __getattr__(name: str) -> Any:  # the MXNet parts load when first used: `archspec.train.config` stays light
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Config", "TrainingInterrupted", "evaluate", "latest_checkpoint", "parse_contexts", "train"]
