"""Shapes and counts: every layer measured on the input it receives (`measure`), and the rows of a network laid
out from those measurements, each at its path (`place`).

A measurement is a pure function of a layer's value and its input shape, so it is cached by that value: a
repeat's copies, a layer and the composite around it, and the networks of a design space measure each distinct
layer once. Locations stay outside the cache: a row gets its path, and a problem its YAML line, from the layer
where it is placed. The path scheme (`b3.0.branch2.1`, the names of the built Gluon children) is written here
and nowhere else.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Hashable, Optional

from pydantic import BaseModel

from .diagnostics import Problem, SpecError, problem
from .kinds import Layer, Layers, Shape, ShapeError
from .tables import format_shape

BYTES_PER_VALUE = 4  # float32 activations
CACHE_SIZE = 100_000  # measurements kept; past it the cache starts again (what it holds is recomputed, not wrong)


@dataclass(frozen=True)
class Row:
    """One node of the network: a stage or auxiliary head (depth 0), a layer, or a layer inside a branch. A layer's
    row carries the layer and the rows of its child sequences, so that the builder and the diagram read the network
    from the rows."""

    path: str  # "b3.0.branch2.1", the names of the built Gluon children
    kind: str
    depth: int
    input: Shape
    output: Shape
    params: int  # trainable parameters, this node and everything inside it
    state: int  # non-trainable state (batch-norm running statistics)
    macs: int  # multiply-accumulates per example
    memory: int  # bytes of activations written per example
    layer: Optional[Layer] = field(default=None, compare=False, repr=False)  # None for a stage or head
    sequences: tuple[tuple[Optional[str], tuple[Row, ...]], ...] = field(default=(), compare=False, repr=False)

    @property
    def weights(self) -> int:
        """Parameters and state: what this node holds, as `collect_params()` counts it."""
        return self.params + self.state

    @property
    def layers(self) -> tuple[Row, ...]:
        """The rows of a stage's or head's layers (its one sequence)."""
        return self.sequences[0][1] if self.sequences else ()


ROW_FIELDS = ("path", "kind", "depth", "input", "output", "params", "state", "macs", "memory")  # what a report shows


@dataclass(frozen=True)
class Measured:
    """What a layer gives on one input: its output, its counts with everything inside it, and a warning when it is
    valid but useless there. Holds no location, so that equal layers share it."""

    output: Shape
    params: int
    state: int
    macs: int
    memory: int
    warning: Optional[str] = None


_measured: dict[tuple[Hashable, Shape], Measured] = {}
_SCALARS = (int, float, str, bool, type(None))
shape_rules = 0  # shape rules evaluated in this process (measurements not found in the cache): a test counts them


def child_path(path: str, name: Optional[str]) -> str:
    """The path of a composite layer's child sequence: `b3.0` + `branch2` -> `b3.0.branch2`."""
    return f"{path}.{name}" if name else path


def value_key(value: Any) -> Hashable:
    """A layer (or field value) as a hashable value: equal for equal layers wherever they are written."""
    if isinstance(value, Layer):
        kept = value.__pydantic_private__["_value_key"]  # type: ignore[index]  # (`._value_key`, 5x slower)
        if kept.key is None:
            kept.key = (type(value), tuple((name, value_key(v)) for name, v in value.__dict__.items()))
        return kept.key
    if type(value) in _SCALARS:
        return (type(value), value)  # 1, 1.0 and True are different values to a layer
    if isinstance(value, (list, tuple)):
        return tuple(value_key(v) for v in value)
    if isinstance(value, dict):
        return ("{}",) + tuple((k, value_key(v)) for k, v in value.items())
    if isinstance(value, BaseModel):  # a model inside a layer (a user's kind may nest one)
        return (type(value), tuple((k, value_key(v)) for k, v in value.__dict__.items()))
    try:
        hash(value)
        return (type(value), value)
    except TypeError:  # a value of a user's kind that Python cannot hash: its text stands for it
        return (type(value), repr(value))


def measure(layer: Layer, shape: Shape) -> Measured:
    """`layer` on an input of `shape`; `SpecError` at the layer's YAML line if it cannot take it."""
    global shape_rules
    key = (value_key(layer), shape)
    found = _measured.get(key)
    if found is not None:
        return found
    try:
        found = _measure(layer, shape)
    except SpecError:
        raise  # from a layer inside this one, already located
    except ShapeError as e:
        raise SpecError([problem(layer._mark, layer._source,
                                 f"{layer.kind} on input {format_shape(shape)}: {e}")]) from None
    except Exception as e:
        if type(layer).__module__.startswith("archspec."):
            raise  # a bug of ours: the CLI reports it as one
        # A kind of the user's that fails is the user's problem, reported at its YAML line.
        raise SpecError([problem(layer._mark, layer._source, f"{layer.kind} on input {format_shape(shape)}: "
                                                             f"{type(e).__name__}: {e}")]) from None
    shape_rules += 1
    if len(_measured) >= CACHE_SIZE:
        _measured.clear()
    _measured[key] = found
    return found


def _measure(layer: Layer, shape: Shape) -> Measured:
    sequences = layer.sequences()
    outs, inner = [], []
    for _, seq in sequences:
        out = shape
        for child in seq:  # each child sequence receives this layer's input
            measured = measure(child, out)
            inner.append(measured)
            out = measured.output
        outs.append(out)
    out = layer.combine(shape, outs) if sequences else layer.infer(shape)
    if not (isinstance(out, tuple) and out and all(type(d) is int and d >= 1 for d in out)):
        raise ShapeError(f"its shape rule gave {out!r}, not a shape of positive integers")
    own = (layer.params(shape, out), layer.state(shape, out), layer.macs(shape, out),
           layer.activations(shape, out) * BYTES_PER_VALUE)
    if not all(type(n) is int and n >= 0 for n in own):  # a kind of the user's may count anything
        raise ShapeError(f"its counts gave {own[:3]} parameters, state and MACs, and {own[3]!r} bytes "
                         "of activations: not integers of 0 or more")
    params, state, macs, memory = (n + sum(getattr(m, f) for m in inner)
                                   for n, f in zip(own, ("params", "state", "macs", "memory")))
    return Measured(out, params, state, macs, memory, layer.lint(shape) or _no_mac_rule(layer, own[0]))


def _no_mac_rule(layer: Layer, params: int) -> Optional[str]:
    """A user's kind with weights of its own and no `macs` of its own counts 0 MACs: say so rather than under-count
    silently (archspec's kinds without a MAC rule, batch norm's, count none by design)."""
    if params and type(layer).macs is Layer.macs and not type(layer).__module__.startswith("archspec."):
        return (f"{layer.kind} has {params:,} parameters but no MAC rule, so its MACs count as 0 (define "
                "`macs(shape, out)` on the kind)")
    return None


class Layout:
    """Lays out rows in pre-order (a node before its children), each at its path; holds the rows laid out so far
    and the warnings of the layers placed, in the order a walk meets them."""

    def __init__(self) -> None:
        self.rows: list[Row] = []
        self.warnings: list[Problem] = []

    def group(self, name: str, kind: str, layers: Layers, shape: Shape) -> Row:
        """The row of a stage or an auxiliary head (`kind`) named `name`, its layers after it."""
        index = len(self.rows)
        self.rows.append(None)  # type: ignore[arg-type]  # its place in pre-order, filled below
        children = self.sequence(layers, shape, name, 1)
        out = children[-1].output if children else shape
        params, state, macs, memory = (sum(getattr(r, f) for r in children)
                                       for f in ("params", "state", "macs", "memory"))
        row = Row(name, kind, 0, shape, out, params, state, macs, memory, sequences=((None, children),))
        self.rows[index] = row
        return row

    def sequence(self, layers: Layers, shape: Shape, path: str, depth: int) -> tuple[Row, ...]:
        placed = []
        for i, layer in enumerate(layers):
            placed.append(self.layer(layer, shape, f"{path}.{i}", depth))
            shape = placed[-1].output
        return tuple(placed)

    def layer(self, layer: Layer, shape: Shape, path: str, depth: int) -> Row:
        measured = measure(layer, shape)
        index = len(self.rows)
        self.rows.append(None)  # type: ignore[arg-type]
        sequences = tuple((name, self.sequence(seq, shape, child_path(path, name), depth + 1))
                          for name, seq in layer.sequences())
        row = Row(path, layer.display(), depth, shape, measured.output, measured.params, measured.state,
                  measured.macs, measured.memory, layer, sequences)
        self.rows[index] = row
        if measured.warning:  # after the warnings of the layers inside it, each copy of a repeat its own
            self.warnings.append(problem(layer._mark, layer._source, measured.warning, severity="warning"))
        return row
