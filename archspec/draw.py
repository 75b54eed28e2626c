"""Architecture diagrams: the spec as a Graphviz graph. Stages are boxes, branches sit side by side,
every edge carries the shape that flows along it and every block its parameter count. Needs no MXNet;
rendering needs Graphviz's `dot` program."""
from __future__ import annotations

import os
from pathlib import Path

from .analysis import Summary, summarize
from .errors import InputError
from .files import write_atomically
from .layers import Layer, Shape, _fmt
from .schema import Spec

FORMATS = ("svg", "png", "pdf", "dot")


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _params(n: int) -> str:
    return f"{n:,} params" if n else ""


class _Graph:
    def __init__(self, summary: Summary):
        self.rows = {r.path: r for r in summary.rows}
        self.lines: list[str] = []
        self.edges: list[str] = []  # written after every cluster: an edge inside one would pull its ends in
        self.count = 0

    def node(self, label: str, **attrs) -> str:
        self.count += 1
        name = f"n{self.count}"
        extra = "".join(f", {k}={_quote(str(v))}" for k, v in attrs.items())
        self.lines.append(f"{name} [label={_quote(label)}{extra}];")
        return name

    def edge(self, a: str, b: str, shape: Shape | None, **attrs) -> None:
        extra = "".join(f", {k}={_quote(str(v))}" for k, v in attrs.items())
        self.edges.append(f"{a} -> {b} [label={_quote(' ' + _fmt(shape) if shape else '')}{extra}];")

    def cluster(self, label: str, style: str) -> None:
        self.count += 1
        self.lines += [f"subgraph cluster_{self.count} {{", f"label={_quote(label)}; {style}"]

    def end(self) -> None:
        self.lines.append("}")

    def sequence(self, layers, path: tuple, prev: str, shape: Shape) -> tuple[str, Shape]:
        for i, layer in enumerate(layers):
            prev, shape = self.layer(layer, path + (str(i),), prev, shape)
        return prev, shape

    def layer(self, layer: Layer, path: tuple, prev: str, shape: Shape) -> tuple[str, Shape]:
        row = self.rows[".".join(path)]
        if not layer.children:
            node = self.node("\n".join(filter(None, [_describe(layer), _params(row.params + row.state)])))
            self.edge(prev, node, shape)
            return node, row.output
        ends: list[tuple[str, Shape]] = []
        firsts: list[str] = []  # the first node of each branch, kept on one row in branch order

        def walk(children, s, name):  # each child sequence starts where this layer starts
            if children:
                firsts.append(f"n{self.count + 1}")
            ends.append(self.sequence(children, path + ((name,) if name else ()), prev, s))
            return ends[-1][1]

        self.cluster(" · ".join(filter(None, [row.kind, _params(row.params + row.state)])),
                     'style="rounded,filled"; fillcolor="#f4f4f4"; color="#bbbbbb";')
        out = layer.trace(shape, walk)
        if max(layer.children.values()) == 1 and len(ends) == 1:
            self.end()
            return ends[0][0], out
        if len(firsts) > 1:
            self.lines.append("{rank=same; " + "; ".join(firsts) + "}")
        merge = self.node(getattr(layer, "merge", "merge"), shape="circle", width="0.3")
        for end, s in ends:
            self.edge(end, merge, s)
        self.end()
        return merge, out


def _describe(layer: Layer) -> str:
    """`conv 7x7 /2, 64`-like text from the fields a spec set (defaults left out)."""
    fields = layer.model_dump(exclude_defaults=True, exclude=set(layer.children))
    parts = [f"{k} {_value(v)}" for k, v in fields.items()]
    return layer.kind + ("\n" + ", ".join(parts) if parts else "")


def _value(v) -> str:
    if isinstance(v, (list, tuple)):
        return "x".join(map(str, v))
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} {_value(x)}" for k, x in v.items()) + "}"
    return str(v).lower() if isinstance(v, bool) else str(v)


def to_dot(spec: Spec, summary: Summary | None = None) -> str:
    """The Graphviz source of a spec's diagram."""
    summary = summary or summarize(spec, limits=None)
    g = _Graph(summary)
    title = (f"{spec.name}: {summary.params:,} parameters"
             + (f" + {summary.state:,} state" if summary.state else "")
             + f", {summary.macs / 1e6:,.1f} M MACs")
    prev = g.node(f"input\n{_fmt(summary.input)}", shape="box", style="rounded")
    shape = summary.input
    taps: dict[str, tuple[str, Shape]] = {}  # layer path -> (node, its output shape)
    for name, layers in spec.layers():
        row = summary.row(name)
        g.cluster(f"{name} · {_fmt(row.output)} · {_params(row.params + row.state) or '0 params'}",
                  'style="rounded"; color="#4a7ab5"; fontcolor="#4a7ab5";')
        for i, layer in enumerate(layers):
            prev, shape = g.layer(layer, (name, str(i)), prev, shape)
            taps[f"{name}.{i}"] = (prev, shape)
        taps[name] = (prev, shape)
        g.end()
    out = g.node(f"output\n{_fmt(summary.output)}", shape="box", style="rounded")
    g.edge(prev, out, shape)
    for name, head in spec.aux.items():
        start, s = taps[head.after]
        row = summary.row(name)
        g.cluster(f"{name} (training only, loss weight {head.weight:g}) · {_params(row.params + row.state)}",
                  'style="rounded,dashed"; color="#b5654a"; fontcolor="#b5654a";')
        end, s = g.sequence(head.layers, (name,), start, s)
        g.end()
        g.edge(end, g.node(f"{name}\n{_fmt(s)}", shape="box", style="rounded,dashed"), s)
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
