"""How archspec writes numbers, shapes and tables, in one place: the summary, `compare` and the diagrams
all read the same."""
from __future__ import annotations

from typing import Any, Mapping, Sequence


def format_shape(shape: Sequence[int]) -> str:
    """`(480, 6, 6)` -> `480x6x6`."""
    return "x".join(map(str, shape))


def si(n: float) -> str:
    """`276100000` -> `276.1M`: multiply-accumulates and other counts, short."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f}{unit}"
    return str(n)


def size_in_bytes(n: int) -> str:
    """`2_800_000` -> `2.7 MiB`."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def table(header: Sequence[str], rows: Sequence[Sequence[str]], align: str, total: Sequence[str] | None = None,
          title: str | None = None) -> str:
    """A plain-text table, each column aligned as `align` says (`l` or `r`, one letter a column); ruled when
    it has a title, with an optional total row under a rule."""
    everything = [header, *rows, *([total] if total else [])]
    widths = [max(len(row[i]) for row in everything) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) if a == "l" else c.rjust(w) for c, w, a in zip(row, widths, align))

    if title is None:
        return "\n".join(line(r).rstrip() for r in everything)
    rule = "-" * len(line(header))
    return "\n".join([title, rule, line(header), rule, *map(line, rows), *([rule, line(total)] if total else [])])


def block_table(blocks: Mapping[str, Any], markdown: bool = False) -> str:
    """The library's blocks: name, arguments (`name` if required, `name=default` otherwise) and what each is."""
    from .blocks import is_required  # blocks.py reads kinds.py, which formats shapes with this module

    rows = []
    for name, block in blocks.items():
        args = ", ".join(arg if is_required(default) else f"{arg}={_yaml_value(default)}"
                         for arg, default in (block.get("args") or {}).items())
        rows.append([name, args, str(block.get("doc", ""))])
    if not markdown:
        return table(["block", "arguments", "what it is"], rows, "lll")
    return "\n".join(["| block | arguments | what it is |", "|---|---|---|",
                      *(f"| `{name}` | `{args}` | {doc} |" for name, args, doc in rows)])


def _yaml_value(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(map(_yaml_value, value)) + "]"
    return {True: "true", False: "false", None: "null"}.get(value, str(value)) if isinstance(value, bool) \
        or value is None else str(value)


def with_section(text: str, name: str, body: str) -> str:
    """`text` (a Markdown file) with the part between its `<!-- NAME:start ... -->` and `<!-- NAME:end -->` lines
    replaced by `body`, keeping the blank lines around it; `ValueError` if the markers are not there."""
    start, end = text.find(f"<!-- {name}:start"), text.find(f"<!-- {name}:end -->")
    if start < 0 or end < start:
        raise ValueError(f"no `<!-- {name}:start -->` ... `<!-- {name}:end -->` markers")
    start = text.index("\n", start) + 1
    old = text[start:end]
    lead, trail = old[:len(old) - len(old.lstrip("\n"))], old[len(old.rstrip("\n")):]
    return text[:start] + lead + body.strip("\n") + (trail or "\n") + text[end:]
