"""Static analysis of a validated spec: the input and output shape, parameters, state, MACs and activation
memory of every layer, as rows (`walk.Layout`, from the shapes `walk.measure` computes), without importing
MXNet; the budget a spec must fit; the summary table. A loaded spec carries its analysis: `summarize(spec)`
returns it, and walks again only for another input."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from .diagnostics import UNKNOWN, Problem, SpecError, problem
from .expand import MAX_LAYERS
from .kinds import Shape
from .tables import format_shape, si, size_in_bytes, table
from .schema import Spec
from .walk import ROW_FIELDS, Layout, Row, child_path

__all__ = ["Limits", "Row", "Summary", "child_path", "format_table", "summarize"]



@dataclass(frozen=True)
class Limits:
    """A spec over these is refused before anything is allocated."""

    max_params: int = 1_000_000_000  # ~4 GB of float32 weights
    max_memory: int = 4 << 30  # activation bytes for one example
    max_layers: int = MAX_LAYERS  # layers the spec expands to; checked while expanding (`load_spec`)


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
    def weights(self) -> int:
        """Parameters and state: everything the network holds, as `collect_params()` counts it."""
        return self.params + self.state

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
                "layers": [{**{f: getattr(r, f) for f in ROW_FIELDS}, "input": list(r.input), "output": list(r.output)}
                           for r in self.rows],
                "warnings": [str(w) for w in self.warnings]}


def summarize(spec: Spec, input_shape: Shape | None = None, limits: Limits | None = Limits(),
              memo: object = None) -> Summary:
    """Shapes, parameters, MACs and memory of every layer of `spec` on `input_shape` (default: the
    spec's own input). Raises `SpecError` at the YAML line of a layer that cannot take its input, or
    when the network exceeds `limits` (pass `limits=None` to skip that check). A loaded spec carries its
    analysis on its own input, and this returns it. (`memo` is no longer needed, and ignored.)"""
    shape = tuple(input_shape or spec.input.shape)
    kept = spec._analysis
    if kept.summary is not None and kept.stages is spec.stages and kept.summary.input == shape:
        summary = kept.summary
    else:
        summary = _laid_out(spec, shape)
        if shape == spec.input.shape:
            kept.summary, kept.stages = summary, spec.stages
    if limits is not None:
        _check_limits(spec, summary, limits)
    return summary


def _laid_out(spec: Spec, shape: Shape) -> Summary:
    layout = Layout()
    out = shape
    for name, layers in spec.layers():
        out = layout.group(name, "stage", layers, out).output
    outputs = {r.path: r.output for r in layout.rows if r.depth <= 1}
    for name, head in spec.aux.items():
        layout.group(name, "aux", head.layers, outputs[head.after])
    return Summary(spec.name, shape, out, tuple(layout.rows), spec._analysis.notices + tuple(layout.warnings))


def _check_limits(spec: Spec, summary: Summary, limits: Limits) -> None:
    first = next(iter(spec.stages.values()))
    mark = first[0]._mark if first else UNKNOWN
    over = []
    if summary.weights > limits.max_params:
        over.append(f"{summary.weights:,} parameters exceed the limit of {limits.max_params:,}")
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
            lines.append([("  " * r.depth) + name, r.kind, format_shape(r.output), f"{r.weights:,}",
                          si(r.macs), size_in_bytes(r.memory)])
    total = ["total", "", format_shape(summary.output), f"{summary.weights:,}", si(summary.macs),
             size_in_bytes(summary.memory)]
    aux = sum(r.params for r in summary.aux)
    counts = (f"{summary.params:,} trainable parameters"
              + (f" ({aux:,} in auxiliary heads, used only in training)" if aux else "")
              + (f" + {summary.state:,} state" if summary.state else "")
              + f", {summary.macs / 1e6:,.1f} M multiply-accumulates per example")
    return table(("layer", "kind", "output", "params", "MACs", "memory"), lines, "lllrrr", total,
                 f"{summary.name}: input {format_shape(summary.input)}") + "\n" + counts
