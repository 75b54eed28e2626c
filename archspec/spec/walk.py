"""The one walk that computes shapes: every layer's input and output shape, with its parameters, state,
MACs and activation memory, as rows in pre-order. The analysis keeps the rows; expansion asks it for the
output shape of each entry it expands (`output_shape`), so `$in` is known where it is used."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Optional

from .diagnostics import Problem, SpecError, problem
from .kinds import Layer, Layers, Shape, ShapeError
from .report import format_shape

BYTES_PER_VALUE = 4  # float32 activations
Counts = tuple[int, int, int, int]  # a node's own parameters, state, MACs and activation bytes


@dataclass(frozen=True)
class Row:
    """One node of the network: a stage or auxiliary head (depth 0), a layer, or a layer inside a branch."""

    path: str  # "b3.0.branch2.1", the names of the built Gluon children
    kind: str
    depth: int
    input: Shape
    output: Shape
    params: int  # trainable parameters, this node and everything inside it
    state: int  # non-trainable state (batch-norm running statistics)
    macs: int  # multiply-accumulates per example
    memory: int  # bytes of activations written per example


def child_path(path: str, name: str | None) -> str:
    """The path of a composite layer's child sequence: `b3.0` + `branch2` -> `b3.0.branch2`."""
    return f"{path}.{name}" if name else path


class Walk:
    """Rows in pre-order (a node before its children), each summing what is inside it."""

    def __init__(self, remember: bool = False, outputs: Optional[dict[tuple[int, Shape], Shape]] = None,
                 walked: Optional[dict[tuple[int, Shape, int], tuple[Shape, str, list[Row]]]] = None) -> None:
        self.rows: list[Row] = []
        self.warnings: list[Problem] = []
        # Outputs by (layer, input): expansion asks for every entry's output as it builds bigger ones around it
        self.outputs = (outputs if outputs is not None else {}) if remember else None
        # The rows of a layer already walked, by (layer, input, depth): a repeat's copies are one object (kept from
        # one walk to the next for a design space's networks, whose layers are kept alive with them)
        self.walked = walked if walked is not None else {}

    def sequence(self, layers: Layers, shape: Shape, path: str, depth: int) -> Shape:
        for i, layer in enumerate(layers):
            shape = self.layer(layer, shape, f"{path}.{i}", depth)
        return shape

    def node(self, path: str, kind: str, depth: int, shape: Shape, visit: Callable[[], tuple[Shape, Counts]]) -> Shape:
        """Append the row of `path`; `visit()` walks its children and returns its output and its own counts."""
        index = len(self.rows)
        self.rows.append(Row(path, kind, depth, shape, shape, 0, 0, 0, 0))  # a placeholder keeps pre-order
        out, own = visit()
        inner = [r for r in self.rows[index + 1:] if r.depth == depth + 1]
        totals = (n + sum(getattr(r, f) for r in inner) for n, f in zip(own, ("params", "state", "macs", "memory")))
        self.rows[index] = Row(path, kind, depth, shape, out, *totals)
        return out

    def layer(self, layer: Layer, shape: Shape, path: str, depth: int) -> Shape:
        if self.outputs is not None and (id(layer), shape) in self.outputs:
            return self.outputs[id(layer), shape]
        seen = self.walked.get((id(layer), shape, depth))
        if seen is not None:  # the same layer on the same input: the same rows, at this path
            out, first, rows = seen
            self.rows += [replace(r, path=path + r.path[len(first):]) for r in rows]
            return out
        start, warned = len(self.rows), len(self.warnings)

        def visit() -> tuple[Shape, Counts]:
            sequences = layer.sequences()
            outs = [self.sequence(seq, shape, child_path(path, name), depth + 1) for name, seq in sequences]
            out = layer.combine(shape, outs) if sequences else layer.infer(shape)
            if not (isinstance(out, tuple) and out and all(type(d) is int and d >= 1 for d in out)):
                raise ShapeError(f"its shape rule gave {out!r}, not a shape of positive integers")
            counts = (layer.params(shape, out), layer.state(shape, out), layer.macs(shape, out),
                      layer.activations(shape, out) * BYTES_PER_VALUE)
            if not all(type(n) is int and n >= 0 for n in counts):  # a kind of the user's may count anything
                raise ShapeError(f"its counts gave {counts[:3]} parameters, state and MACs, and {counts[3]!r} bytes "
                                 "of activations: not integers of 0 or more")
            return out, counts

        try:
            out = self.node(path, layer.display(), depth, shape, visit)
            useless = layer.lint(shape)
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
        if useless:
            self.warnings.append(problem(layer._mark, layer._source, useless, severity="warning"))
        if self.outputs is not None:
            self.outputs[id(layer), shape] = out
        if len(self.warnings) == warned:  # a layer that warns is walked again, so that each copy says so
            self.walked[id(layer), shape, depth] = (out, path, self.rows[start:])
        return out

    def stage(self, name: str, layers: Layers, shape: Shape, kind: str) -> Shape:
        return self.node(name, kind, 0, shape, lambda: (self.sequence(layers, shape, name, 1), (0, 0, 0, 0)))



