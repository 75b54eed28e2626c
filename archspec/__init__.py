"""archspec: declare a CNN in YAML, validate it with Pydantic, analyse it statically, build it in Gluon.

    from archspec import build_model
    net = build_model("specs/googlenet.yaml")

Importing archspec does not import MXNet; only `build_model` (and training and export) do.
"""
from __future__ import annotations

import os
import sys
from typing import Any, Iterable, Mapping

if "mxnet" not in sys.modules:  # MXNet reads it once, at import; unset, it computes on one core (half speed here)
    os.environ.setdefault("OMP_NUM_THREADS", str(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                                                 else os.cpu_count() or 1))

from .analysis import Limits, Row, Summary, format_table, summarize
from .errors import InputError, Problem, SpecError
from .layers import REGISTRY, Layer, Macro, ShapeError, register
from .resolve import load_resolved
from .schema import Spec, validate

__version__ = "0.1.0"


def load_spec(source: str | os.PathLike | Mapping[str, Any],
              overrides: Mapping[str, Any] | Iterable[str] | None = None) -> Spec:
    """Load, resolve (`base:`, overrides) and validate a spec: the path of a YAML file, or the same
    data as a Python mapping. Raises `SpecError` with the place of every problem. Does not import MXNet."""
    return validate(load_resolved(source, overrides))


def build_model(spec_or_path, overrides=None, **kwargs):
    """Build the Gluon network of a spec; see `archspec.builder.build_model`."""
    from .builder import build_model as _build

    return _build(spec_or_path, overrides, **kwargs)


__all__ = ["InputError", "Layer", "Limits", "Macro", "Problem", "REGISTRY", "Row", "ShapeError", "Spec",
           "SpecError", "Summary", "build_model", "format_table", "load_spec", "register", "summarize", "validate"]
