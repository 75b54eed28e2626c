"""The spec core: the spec language and everything that reads it without MXNet.

    load -> resolve -> expand + validate (one pass) -> Spec with its analysis -> draw / JSON Schema

`loader` (safe YAML with file:line:col), `resolve` (`base:`, overrides), `expand` (args, blocks, defaults,
width/depth, `when`, `repeat`; each entry validated as its kind as it is made, and measured on its input),
`schema` (the validated `Spec`, which carries its analysis), `kinds` (the layer kinds: fields, shape rules,
counts), `walk` (measuring a layer, cached by its value, and laying out the rows), `analysis` (`summarize`,
limits, the table), `blocks` (the block library and argument types), `located` (Pydantic over the marked
tree), `draw`, `jsonschema`, `diagnostics` (located problems) and `tables` (numbers and tables). Nothing in
this package imports MXNet; a test runs all of it with MXNet unimportable.
"""
from __future__ import annotations

import os
from typing import Any, Iterable, Mapping, Optional, Union

from .expand import MAX_LAYERS
from .resolve import load_resolved
from .schema import Spec, validate

Overrides = Optional[Union[Mapping[str, Any], Iterable[str]]]  # {"stages.b3.0.c1": 96} or ["stages.b3.0.c1=96"]


def with_overrides(overrides: Overrides, extra: Mapping[str, Any]) -> Overrides:
    """`overrides`, then `extra`, in the form `overrides` has: a mapping, or `path=value` strings."""
    if not extra:
        return overrides
    if overrides is None or isinstance(overrides, Mapping):
        return {**(overrides or {}), **extra}
    return [*overrides, *(f"{k}={v}" for k, v in extra.items())]


def input_overrides(channels: Optional[int] = None, height: Optional[int] = None,
                    width: Optional[int] = None) -> dict[str, int]:
    """The overrides that give a spec another input (`--input CxHxW`, `--resize N`): the sizes given, as
    {"input.channels": C, "input.height": H, "input.width": W}, so that expressions over `in` see them too."""
    sizes = {"channels": channels, "height": height, "width": width}
    return {f"input.{name}": size for name, size in sizes.items() if size is not None}


def load_spec(source: Union[str, os.PathLike[str], Mapping[str, Any]], overrides: Overrides = None,
              max_layers: int = MAX_LAYERS, base_outside: bool = False) -> Spec:
    """Load, resolve (`base:`, overrides), expand and validate a spec: the path of a YAML file, or the same
    data as a Python mapping. A spec that expands to more than `max_layers` layers is refused while it is being
    expanded; a `base:` outside the spec's project is refused unless `base_outside`. Raises `SpecError` with the
    place of every problem. Does not import MXNet."""
    return validate(load_resolved(source, overrides, base_outside), max_layers)
