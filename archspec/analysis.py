"""Static analysis of a validated spec: output shape, parameters, state, MACs and activation memory
of every layer, without importing MXNet. Shape errors become `SpecError`s at the YAML line."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from .errors import Problem, SpecError
from .layers import Layer, Shape, ShapeError, _fmt
from .loader import Mark, problem
from .schema import Spec

BYTES_PER_VALUE = 4  # float32 activations


@dataclass(frozen=True)
class Limits:
    """A spec over these is refused before anything is allocated."""

    max_params: int = 1_000_000_000  # ~4 GB of float32 weights
    max_memory: int = 4 << 30  # activation bytes for one example


@dataclass(frozen=True)
class Row:
    """One node of the network: a stage (depth 0), a layer, or a layer inside a branch."""

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
        return next(r for r in self.rows if r.path == path)

    def to_dict(self) -> dict:
        return {"name": self.name, "input": list(self.input), "output": list(self.output),
                "params": self.params, "state": self.state, "macs": self.macs, "memory": self.memory,
                "layers": [{**asdict(r), "input": list(r.input), "output": list(r.output)} for r in self.rows],
                "warnings": [str(w) for w in self.warnings]}


class _Tracer:
    def __init__(self):
        self.rows: list[Row] = []
        self.warnings: list[Problem] = []

    def sequence(self, layers, shape: Shape, path: tuple, depth: int) -> Shape:
        for i, layer in enumerate(layers):
            shape = self.layer(layer, shape, path + (str(i),), depth)
        return shape

    def layer(self, layer: Layer, shape: Shape, path: tuple, depth: int) -> Shape:
        index = len(self.rows)
        self.rows.append(None)  # keep pre-order: this row before its children

        def walk(children, s, name):
            return self.sequence(children, s, path + ((name,) if name else ()), depth + 1)

        try:
            out = layer.trace(shape, walk)
        except ShapeError as e:
            raise SpecError([problem(layer._mark or Mark("<spec>", 1, 1), layer._source,
                                     f"{layer.kind} on input {_fmt(shape)}: {e}")]) from None
        inner = [r for r in self.rows[index + 1:] if r.depth == depth + 1]
        own_memory = 0 if layer.kind == "sequential" else math.prod(out) * BYTES_PER_VALUE
        self.rows[index] = Row(
            ".".join(path), layer.display(), depth, shape, out,
            layer.params(shape, out) + sum(r.params for r in inner),
            layer.state(shape, out) + sum(r.state for r in inner),
            layer.macs(shape, out) + sum(r.macs for r in inner),
            own_memory + sum(r.memory for r in inner))
        self._lint(layer, shape)
        return out

    def stage(self, name: str, layers, shape: Shape, kind: str = "stage") -> Shape:
        index = len(self.rows)
        self.rows.append(None)
        out = self.sequence(layers, shape, (name,), 1)
        inner = [r for r in self.rows[index + 1:] if r.depth == 1]
        self.rows[index] = Row(name, kind, 0, shape, out, *(sum(getattr(r, f) for r in inner)
                                                                for f in ("params", "state", "macs", "memory")))
        return out

    def _lint(self, layer: Layer, shape: Shape) -> None:
        """Layers that are valid but do nothing useful."""
        useless = None
        if layer.kind in ("maxpool", "avgpool", "global_avg_pool", "global_max_pool") and shape[1:] == (1, 1):
            useless = f"{layer.kind} on a 1x1 input does nothing"
        elif layer.kind == "dropout" and layer.rate == 0:
            useless = "dropout with rate 0 does nothing"
        if useless:
            self.warnings.append(problem(layer._mark, layer._source, useless, severity="warning"))


def summarize(spec: Spec, input_shape: Shape | None = None, limits: Limits | None = Limits()) -> Summary:
    """Shapes, parameters, MACs and memory of every layer of `spec` on `input_shape` (default: the
    spec's own input). Raises `SpecError` at the YAML line of a layer that cannot take its input, or
    when the network exceeds `limits` (pass `limits=None` to skip that check)."""
    shape = tuple(input_shape or spec.input.shape)
    tracer = _Tracer()
    for name, layers in spec.layers():
        shape = tracer.stage(name, layers, shape)
    taps = {r.path: r.output for r in tracer.rows if r.depth <= 1}
    for name, head in spec.aux.items():
        stage, index = head.tap
        tracer.stage(name, head.layers, taps[stage if index is None else f"{stage}.{index}"], "aux")
    summary = Summary(spec.name, tuple(input_shape or spec.input.shape), shape, tuple(tracer.rows),
                      tuple(tracer.warnings))
    if limits is not None:
        _check_limits(spec, summary, limits)
    return summary


def _check_limits(spec: Spec, summary: Summary, limits: Limits) -> None:
    first = next(iter(spec.stages.values()))
    mark = first[0]._mark if first else Mark("<spec>", 1, 1)
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
    header = ("layer", "kind", "output", "params", "MACs", "memory")
    parents: list[str] = []  # path of the enclosing row at each depth
    lines = []
    for r in summary.rows:
        del parents[r.depth:]
        parents.append(r.path)
        if r.depth <= depth:
            name = r.path[len(parents[-2]) + 1:] if r.depth else r.path
            lines.append([("  " * r.depth) + name, r.kind, _fmt(r.output), f"{r.params + r.state:,}",
                          _si(r.macs), _bytes(r.memory)])
    lines.append(["total", "", _fmt(summary.output), f"{summary.params + summary.state:,}",
                  _si(summary.macs), _bytes(summary.memory)])
    widths = [max(len(str(row[i])) for row in [header, *lines]) for i in range(len(header))]

    def fmt(row):
        return "  ".join(str(c).ljust(w) if i < 3 else str(c).rjust(w) for i, (c, w) in enumerate(zip(row, widths)))

    rule = "-" * len(fmt(header))
    title = f"{summary.name}: input {_fmt(summary.input)}"
    aux = sum(r.params for r in summary.aux)
    counts = (f"{summary.params:,} trainable parameters"
              + (f" ({aux:,} in auxiliary heads, used only in training)" if aux else "")
              + (f" + {summary.state:,} state" if summary.state else "")
              + f", {summary.macs / 1e6:,.1f} M multiply-accumulates per example")
    return "\n".join([title, rule, fmt(header), rule, *map(fmt, lines[:-1]), rule, fmt(lines[-1]), counts])


def _si(n: int) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f}{unit}"
    return str(n)


def _bytes(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"
