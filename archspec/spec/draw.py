"""Architecture diagrams: the spec as a Graphviz graph. Stages are boxes, branches sit side by side,
every edge carries the shape that flows along it and every block its parameter count. Needs no MXNet;
rendering needs Graphviz's `dot` program."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..files import write_atomically
from .analysis import Row, Summary, summarize
from .diagnostics import InputError
from .kinds import Layer, Shape
from .tables import format_shape
from .schema import Spec

FORMATS = ("svg", "png", "pdf", "dot")


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _params(n: int) -> str:
    return f"{n:,} params" if n else ""


class _Graph:
    """The Graphviz source being written: its lines (nodes and clusters) and its edges, and how many nodes and
    clusters it has numbered so far."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.edges: list[str] = []  # written after every cluster: an edge inside one would pull its ends in
        self.count = 0

    def node(self, label: str, **attrs: str) -> str:
        self.count += 1
        name = f"n{self.count}"
        extra = "".join(f", {k}={_quote(str(v))}" for k, v in attrs.items())
        self.lines.append(f"{name} [label={_quote(label)}{extra}];")
        return name

    def edge(self, a: str, b: str, shape: Shape | None, **attrs: str) -> None:
        extra = "".join(f", {k}={_quote(str(v))}" for k, v in attrs.items())
        self.edges.append(f"{a} -> {b} [label={_quote(' ' + format_shape(shape) if shape else '')}{extra}];")

    def cluster(self, label: str, style: str) -> None:
        self.count += 1
        self.lines += [f"subgraph cluster_{self.count} {{", f"label={_quote(label)}; {style}"]

    def end(self) -> None:
        self.lines.append("}")

    def sequence(self, rows: tuple[Row, ...], prev: str, shape: Shape) -> tuple[str, Shape]:
        """Draw the layers of `rows` after node `prev`, whose output has `shape`; returns the last node and its
        output."""
        for row in rows:
            prev, shape = self.layer(row, prev)
        return prev, shape

    def layer(self, row: Row, prev: str) -> tuple[str, Shape]:
        layer, sequences = row.layer, row.sequences
        assert layer is not None  # the row of a layer, not of a stage
        if not sequences:
            node = self.node("\n".join(filter(None, [_describe(layer), _params(row.weights)])))
            self.edge(prev, node, row.input)
            return node, row.output
        self.cluster(" · ".join(filter(None, [row.kind, _params(row.weights)])),
                     'style="rounded,filled"; fillcolor="#f4f4f4"; color="#bbbbbb";')
        firsts: list[str] = []  # the first node of each branch, kept on one row in branch order
        ends: list[tuple[str, Shape]] = []
        for name, rows in sequences:  # each child sequence starts where this layer starts
            if rows:
                firsts.append(f"n{self.count + 1}")
            ends.append(self.sequence(rows, prev, row.input))
        if len(sequences) == 1 and sequences[0][0] is None:  # a group of layers, nothing to merge
            self.end()
            return ends[0][0], row.output
        if len(firsts) > 1:
            self.lines.append("{rank=same; " + "; ".join(firsts) + "}")
        merge = self.node(getattr(layer, "merge", "merge"), shape="circle", width="0.3")
        for end, s in ends:
            self.edge(end, merge, s)
        self.end()
        return merge, row.output


def _describe(layer: Layer) -> str:
    """`conv 7x7 /2, 64`-like text from the fields a spec set (defaults left out)."""
    fields = layer.model_dump(exclude_defaults=True, exclude=set(layer.children))
    parts = [f"{k} {_value(v)}" for k, v in fields.items()]
    return layer.kind + ("\n" + ", ".join(parts) if parts else "")


def _value(v: Any) -> str:
    if isinstance(v, (list, tuple)):
        return "x".join(map(str, v))
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} {_value(x)}" for k, x in v.items()) + "}"
    return str(v).lower() if isinstance(v, bool) else str(v)


def to_dot(spec: Spec, summary: Summary | None = None) -> str:
    """The Graphviz source of a spec's diagram."""
    summary = summary or summarize(spec, limits=None)
    g = _Graph()
    title = (f"{spec.name}: {summary.params:,} parameters"
             + (f" + {summary.state:,} state" if summary.state else "")
             + f", {summary.macs / 1e6:,.1f} M MACs")
    prev = g.node(f"input\n{format_shape(summary.input)}", shape="box", style="rounded")
    taps: dict[str, str] = {}  # stage or layer path -> the node of its output
    for name in spec.stages:
        row = summary.row(name)
        g.cluster(f"{name} · {format_shape(row.output)} · {_params(row.weights) or '0 params'}",
                  'style="rounded"; color="#4a7ab5"; fontcolor="#4a7ab5";')
        for layer_row in row.layers:
            prev, _ = g.layer(layer_row, prev)
            taps[layer_row.path] = prev
        taps[name] = prev
        g.end()
    out = g.node(f"output\n{format_shape(summary.output)}", shape="box", style="rounded")
    g.edge(prev, out, summary.output)
    for name, head in spec.aux.items():
        row = summary.row(name)
        g.cluster(f"{name} (training only, loss weight {head.weight:g}) · {_params(row.weights)}",
                  'style="rounded,dashed"; color="#b5654a"; fontcolor="#b5654a";')
        end, s = g.sequence(row.layers, taps[head.after], row.input)
        g.end()
        g.edge(end, g.node(f"{name}\n{format_shape(s)}", shape="box", style="rounded,dashed"), s)
    header = ["digraph archspec {", f"label={_quote(title)}; labelloc=t; fontname=Helvetica; compound=true;",
              "rankdir=TB; nodesep=0.15; ranksep=0.25; ordering=out; newrank=true;",
              'node [shape=box, fontname=Helvetica, fontsize=10, style="rounded,filled", fillcolor=white];',
              "edge [fontname=Helvetica, fontsize=8, color=\"#555555\"];"]
    return "\n".join(header + ["  " + line for line in g.lines + g.edges] + ["}"]) + "\n"


def draw(spec: Spec, output: str | os.PathLike, fmt: str | None = None) -> Path:
    """Write the diagram to `output`; the format comes from its suffix (svg, png, pdf, dot) unless given."""
    output = Path(output)
    fmt = (fmt or output.suffix.lstrip(".")).lower()
    if fmt not in FORMATS:
        raise InputError(f"{output}: cannot tell the format; use a file ending in {', '.join(FORMATS)}")
    if not output.parent.is_dir():
        raise InputError(f"{output.parent}: no such directory")
    source = to_dot(spec)
    if fmt == "dot":
        data = source.encode()
    else:
        import graphviz

        try:
            data = graphviz.Source(source).pipe(format=fmt)
        except graphviz.ExecutableNotFound:
            raise InputError("drawing needs Graphviz's `dot` program: apt-get install graphviz "
                             "(or brew install graphviz); `-o FILE.dot` writes the source without it") from None
    write_atomically(output, data)
    return output
