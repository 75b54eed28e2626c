"""archspec: declare a CNN in YAML, validate it with Pydantic, analyse it statically, build it in Gluon.

    from archspec import build_model
    net = build_model("specs/googlenet.yaml")

Importing archspec defines names and does nothing else: no MXNet import, no environment change. The spec
core (`archspec.spec`) never imports MXNet; `build_model` and `train` import the Gluon backend when called.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, TextIO, Union

from .spec import Overrides, load_spec
from .spec.analysis import Limits, Row, Summary, format_table, summarize
from .spec.diagnostics import InputError, Problem, SpecError
from .spec.kinds import REGISTRY, Layer, ShapeError, register
from .spec.schema import Spec, validate
from .spec.space import Space, load_space, sample

if TYPE_CHECKING:
    from .gluon.modules import Network
    from .train.config import Config

__version__ = "0.1.0"


def build_model(spec_or_path: Union[Spec, str, os.PathLike[str]], overrides: Overrides = None, *,
                ctx: Any = None, hybridize: bool = True, limits: Optional[Limits] = Limits(),
                **kwargs: Any) -> Network:
    """Build the Gluon network of a spec (`archspec.gluon.build.build_model`): stages as named children
    (`net.b3`), hybridized and initialised as the spec says. Imports MXNet."""
    from .gluon.build import build_model as build

    return build(spec_or_path, overrides, ctx=ctx, hybridize=hybridize, limits=limits, **kwargs)


def train(spec_path: Union[str, os.PathLike[str]], out: Union[str, os.PathLike[str]],
          config: Optional[Config] = None, overrides: Overrides = None, resume: bool = False,
          stream: Optional[TextIO] = None, force: bool = False) -> tuple[list[dict[str, Any]], Path]:
    """Train a spec into the run folder `out` (`archspec.train.train`); returns the per-epoch metrics and the
    run folder. Imports MXNet."""
    from .train import Config, train as run

    return run(spec_path, out, config or Config(), overrides, resume=resume, stream=stream, force=force)


__all__ = ["InputError", "Layer", "Limits", "Problem", "REGISTRY", "Row", "ShapeError", "Space", "Spec",
           "SpecError", "Summary", "build_model", "format_table", "load_space", "load_spec", "register", "sample",
           "summarize", "train", "validate"]
