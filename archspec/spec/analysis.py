"""Static analysis of a validated spec: the input and output shape, parameters, state, MACs and activation
memory of every layer, without importing MXNet. This is the one walk that computes shapes: the builder
and the diagrams read its rows by path. Shape errors become `SpecError`s at the YAML line."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any, Callable

from .diagnostics import UNKNOWN, Problem, SpecError, problem
from .kinds import Layer, Layers, Shape, ShapeError
from .report import format_shape, si, size_in_bytes, table
from .schema import Spec

BYTES_PER_VALUE = 4  # float32 activations
Counts = tuple[int, int, int, int]  # a node's own parameters, state, MACs and activation bytes


@dataclass(frozen=True)
class Limits:
    """A spec over these is refused before anything is allocated."""

    max_params: int = 1_000_000_000  # ~4 GB of float32 weights
    max_memory: int = 4 << 30  # activation bytes for one example


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


@dataclass(frozen=True)
class Summary:
    """`params` and `state` count everything the network holds (auxiliary heads included, as
    `collect_params()` does); `macs` and `memory` are the cost of one inference pass, which skips them."""

    name: str
    input: Shape
    output: Shape
    rows: tuple[Row, ...]
    warnings: tuple[Problem, ...] = field(default=())

    @property
    def stages(self) -> tuple[Row, ...]:
        return tuple(r for r in self.rows if r.depth == 0 and r.kind == "stage")

    @property
    def aux(self) -> tuple[Row, ...]:
        """The auxiliary heads, which run only while training."""
        return tuple(r for r in self.rows if r.depth == 0 and r.kind == "aux")

    @property
    def params(self) -> int:
        return sum(r.params for r in self.stages + self.aux)

    @property
    def state(self) -> int:
        return sum(r.state for r in self.stages + self.aux)

    @property
    def macs(self) -> int:
        return sum(r.macs for r in self.stages)

    @property
    def memory(self) -> int:
        return sum(r.memory for r in self.stages)

    def row(self, path: str) -> Row:
        """The row of a stage, head or layer by its path (`b3`, `b3.0.branch2.1`)."""
        return self._by_path[path]

    @cached_property
    def _by_path(self) -> dict[str, Row]:
        return {r.path: r for r in self.rows}

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "input": list(self.input), "output": list(self.output),
                "params": self.params, "state": self.state, "macs": self.macs, "memory": self.memory,
                "layers": [{**asdict(r), "input": list(r.input), "output": list(r.output)} for r in self.rows],
                "warnings": [str(w) for w in self.warnings]}


def child_path(path: str, name: str | None) -> str:
    """The path of a composite layer's child sequence: `b3.0` + `branch2` -> `b3.0.branch2`."""
    return f"{path}.{name}" if name else path


class _Walk:
    """Rows in pre-order (a node before its children), each summing what is inside it."""

    def __init__(self) -> None:
        self.rows: list[Row] = []
        self.warnings: list[Problem] = []

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
        def visit() -> tuple[Shape, Counts]:
            sequences = layer.sequences()
            outs = [self.sequence(seq, shape, child_path(path, name), depth + 1) for name, seq in sequences]
            out = layer.combine(shape, outs) if sequences else layer.infer(shape)
            return out, (layer.params(shape, out), layer.state(shape, out), layer.macs(shape, out),
                         layer.activations(shape, out) * BYTES_PER_VALUE)

        try:
            out = self.node(path, layer.display(), depth, shape, visit)
            useless = layer.lint(shape)
        except ShapeError as e:
            raise SpecError([problem(layer._mark, layer._source,
                                     f"{layer.kind} on input {format_shape(shape)}: {e}")]) from None
        if useless:
            self.warnings.append(problem(layer._mark, layer._source, useless, severity="warning"))
        return out

    def stage(self, name: str, layers: Layers, shape: Shape, kind: str) -> Shape:
        return self.node(name, kind, 0, shape, lambda: (self.sequence(layers, shape, name, 1), (0, 0, 0, 0)))


def summarize(spec: Spec, input_shape: Shape | None = None, limits: Limits | None = Limits()) -> Summary:
    """Shapes, parameters, MACs and memory of every layer of `spec` on `input_shape` (default: the
    spec's own input). Raises `SpecError` at the YAML line of a layer that cannot take its input, or
    when the network exceeds `limits` (pass `limits=None` to skip that check)."""
    shape = tuple(input_shape or spec.input.shape)
    walk = _Walk()
    for name, layers in spec.layers():
        shape = walk.stage(name, layers, shape, "stage")
    outputs = {r.path: r.output for r in walk.rows if r.depth <= 1}
    for name, head in spec.aux.items():
        walk.stage(name, head.layers, outputs[head.after], "aux")
    summary = Summary(spec.name, tuple(input_shape or spec.input.shape), shape, tuple(walk.rows),
                      tuple(walk.warnings))
    if limits is not None:
        _check_limits(spec, summary, limits)
    return summary


def _check_limits(spec: Spec, summary: Summary, limits: Limits) -> None:
    first = next(iter(spec.stages.values()))
    mark = first[0]._mark if first else UNKNOWN
    over = []
    if summary.params + summary.state > limits.max_params:
        over.append(f"{summary.params + summary.state:,} parameters exceed the limit of {limits.max_params:,}")
    if summary.memory > limits.max_memory:
        over.append(f"{summary.memory:,} bytes of activations per example exceed the limit of "
                    f"{limits.max_memory:,}")
    if over:
        raise SpecError([problem(mark, ("stages",), "; ".join(over) + " (raise it with --max-params / "
                                 "--max-memory, or Limits(...) in Python)")])


def format_table(summary: Summary, depth: int = 0) -> str:
    """A readable table: one row per stage (depth 0), or every layer down to `depth`."""
    parents: list[str] = []  # path of the enclosing row at each depth
    lines = []
    for r in summary.rows:
        del parents[r.depth:]
        parents.append(r.path)
        if r.depth <= depth:
            name = r.path[len(parents[-2]) + 1:] if r.depth else r.path
            lines.append([("  " * r.depth) + name, r.kind, format_shape(r.output), f"{r.params + r.state:,}",
                          si(r.macs), size_in_bytes(r.memory)])
    total = ["total", "", format_shape(summary.output), f"{summary.params + summary.state:,}", si(summary.macs),
             size_in_bytes(summary.memory)]
    aux = sum(r.params for r in summary.aux)
    counts = (f"{summary.params:,} trainable parameters"
              + (f" ({aux:,} in auxiliary heads, used only in training)" if aux else "")
              + (f" + {summary.state:,} state" if summary.state else "")
              + f", {summary.macs / 1e6:,.1f} M multiply-accumulates per example")
    return table(("layer", "kind", "output", "params", "MACs", "memory"), lines, "lllrrr", total,
                 f"{summary.name}: input {format_shape(summary.input)}") + "\n" + counts
