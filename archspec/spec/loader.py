"""Safe YAML loading that remembers where every value came from.

`load_yaml` returns plain Python data (`Map` / `Seq` / scalars) in which every mapping and list
knows the file, line and column of each of its entries, so that any later stage - overrides,
templates, Pydantic validation, shape inference - can report `file:line:col`.

Only the JSON-like core of YAML is accepted: no tags, no aliases, bounded size and depth.
"""
from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Any

import yaml

from .diagnostics import UNKNOWN, Mark, fail

MAX_BYTES = 1 << 20  # a spec is a page of text, not a data file
MAX_DEPTH = 64
MAX_NODES = 100_000
MAX_DIGITS = 18  # integers fit in 64 bits; Python would also refuse to print one of 4,300 digits
# Plain scalars that YAML 1.1 (PyYAML) reads as numbers and YAML 1.2 as text: `010` (octal 8), `1:30` (base 60, 90)
_AMBIGUOUS_NUMBER = re.compile(r"^[-+]?(0[0-9_]+|[0-9][0-9_]*(:[0-5]?[0-9])+(\.[0-9_]*)?)$")

_CORE_TAGS = {f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null")}
_MAP_TAG, _SEQ_TAG = "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"


class Map(dict):
    """A mapping that remembers the mark of each key and of each value."""

    mark: Mark
    key_marks: dict[Any, Mark]
    value_marks: dict[Any, Mark]
    #: the field path a user wrote this node at, when expansion moved it (a block's layers, a macro's result)
    origin: tuple[Any, ...] | None

    def __init__(self, items: Any = (), mark: Mark | None = None):
        super().__init__(items)
        self.mark = mark or UNKNOWN
        self.key_marks = {}
        self.value_marks = {}
        self.origin = None

    def set(self, key: Any, value: Any, mark: Mark, key_mark: Mark | None = None) -> None:
        self[key] = value
        self.value_marks[key] = mark
        self.key_marks[key] = key_mark or mark

    def value_mark(self, key: Any) -> Mark:
        return self.value_marks.get(key, self.mark)

    def key_mark(self, key: Any) -> Mark:
        return self.key_marks.get(key, self.mark)


class Seq(list):
    """A list that remembers the mark of each item."""

    mark: Mark
    item_marks: list[Mark]

    def __init__(self, items: Any = (), mark: Mark | None = None, item_marks: list[Mark] | None = None):
        super().__init__(items)
        self.mark = mark or UNKNOWN
        self.item_marks = list(item_marks) if item_marks is not None else [self.mark] * len(self)

    def append_marked(self, value: Any, mark: Mark) -> None:
        self.append(value)
        self.item_marks.append(mark)

    def value_mark(self, index: int) -> Mark:
        return self.item_marks[index] if 0 <= index < len(self.item_marks) else self.mark

    key_mark = value_mark


def marked(value: Any, mark: Mark) -> Any:
    """Plain Python data (from Python overrides, a macro's expansion) as a marked tree, every node at `mark`."""
    if isinstance(value, dict):
        out = Map(mark=mark)
        for k, v in value.items():
            out.set(k, marked(v, mark), mark)
        return out
    if isinstance(value, (list, tuple)):
        return Seq([marked(v, mark) for v in value], mark=mark)
    return value


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses aliases and deep nesting while composing."""

    def __init__(self, stream: str, name: str):
        super().__init__(stream)
        self.name = name
        self._depth = 0
        self._nodes = 0

    def mark(self, m: Any) -> Mark:
        """A PyYAML mark (0-based) as ours (1-based); the start of the file when PyYAML has none."""
        return Mark(self.name, m.line + 1, m.column + 1) if m is not None else Mark(self.name, 1, 1)

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            raise fail(self.mark(event.start_mark), (), "YAML aliases (*name) are not allowed in a spec; "
                       "use `base:` or a block to reuse parts")
        if getattr(event, "anchor", None):
            raise fail(self.mark(event.start_mark), (), "YAML anchors (&name) are not allowed in a spec; "
                       "use `base:` or a block to reuse parts")
        self._nodes += 1
        if self._nodes > MAX_NODES:
            raise fail(self.mark(event.start_mark), (), f"the spec has more than {MAX_NODES} YAML nodes")
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise fail(self.mark(event.start_mark), (), f"the spec is nested deeper than {MAX_DEPTH} levels")
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


# PyYAML follows YAML 1.1, where `1e-3` is a string; accept the float syntax everybody writes.
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _convert(loader: _Loader, node: yaml.Node, path: tuple[Any, ...]) -> Any:
    """Turn a composed node into Map / Seq / scalar, refusing anything outside the JSON-like core."""
    mark = loader.mark(node.start_mark)
    if isinstance(node, yaml.MappingNode):
        if node.tag != _MAP_TAG:
            raise fail(mark, path, f"YAML tag {node.tag!r} is not allowed in a spec")
        out = Map(mark=mark)
        for key_node, value_node in node.value:
            key_mark = loader.mark(key_node.start_mark)
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise fail(key_mark, path, "YAML merge keys (<<) are not allowed; use `base:` to inherit")
            key = _convert(loader, key_node, path)
            if not isinstance(key, str):
                raise fail(key_mark, path, f"keys must be strings, got {key!r} "
                           "(quote it if you meant text)")
            if key in out:
                raise fail(key_mark, path + (key,), f"duplicate key {key!r} "
                           f"(first at line {out.key_mark(key).line})")
            out.set(key, _convert(loader, value_node, path + (key,)),
                    loader.mark(value_node.start_mark), key_mark)
        return out
    if isinstance(node, yaml.SequenceNode):
        if node.tag != _SEQ_TAG:
            raise fail(mark, path, f"YAML tag {node.tag!r} is not allowed in a spec")
        seq = Seq(mark=mark)
        for i, item in enumerate(node.value):
            seq.append_marked(_convert(loader, item, path + (i,)), loader.mark(item.start_mark))
        return seq
    if node.tag not in _CORE_TAGS:
        raise fail(mark, path, f"YAML tag {node.tag!r} is not allowed in a spec "
                   "(only strings, numbers, booleans and null)")
    if isinstance(node, yaml.ScalarNode) and node.style is None and _AMBIGUOUS_NUMBER.match(node.value):
        raise fail(mark, path, f"{node.value!r} is a number only in YAML 1.1 (octal or base 60) and text in YAML "
                               "1.2; write it without leading zeros or colons, or quote it")
    if node.tag.endswith(":int") and len(node.value.lstrip("+-").replace("_", "")) > MAX_DIGITS:
        raise fail(mark, path, f"integer of {len(node.value)} digits; a spec's numbers have at most {MAX_DIGITS}")
    return loader.construct_object(node)


def parse_yaml(text: str, name: str) -> Any:
    """Parse YAML text into marked data; raises SpecError for malformed or hostile input."""
    try:
        loader = _Loader(text, name)
    except yaml.reader.ReaderError as e:
        line = text.count("\n", 0, e.position) + 1
        col = e.position - (text.rfind("\n", 0, e.position) + 1) + 1
        raise fail(Mark(name, line, col), (), f"invalid YAML: control character 0x{e.character:02x}") from None
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        return _convert(loader, node, ())
    except yaml.MarkedYAMLError as e:
        m = e.problem_mark or e.context_mark
        where = Mark(name, m.line + 1, m.column + 1) if m else Mark(name, 1, 1)
        raise fail(where, (), f"invalid YAML: {e.problem or e.context}") from None
    except yaml.YAMLError as e:
        raise fail(Mark(name, 1, 1), (), f"invalid YAML: {e}") from None
    finally:
        loader.dispose()


def read_text(path: str | Path) -> str:
    """Read a spec file as UTF-8 text, refusing binaries and oversized files with a located error."""
    name = str(path)
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO or a device would block or never end
            raise fail(Mark(name, 1, 1), (), "not a regular file; a spec is a YAML text file")
        with open(path, "rb") as f:
            data = f.read(MAX_BYTES + 1)
    except OSError as e:
        raise fail(Mark(name, 1, 1), (), f"cannot read file: {e.strerror or e}") from None
    if len(data) > MAX_BYTES:
        raise fail(Mark(name, 1, 1), (), f"file is larger than {MAX_BYTES // 1024} KiB; is it a spec?")
    if b"\x00" in data:
        raise fail(Mark(name, 1, 1), (), "binary file (contains NUL bytes); a spec is YAML text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        col = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise fail(Mark(name, line, col), (), f"file is not UTF-8 text (byte 0x{data[e.start]:02x})") from None


def load_yaml(path: str | Path) -> Map:
    """Load a spec file: a YAML mapping at top level, every value marked with its source position."""
    name = str(path)
    data = parse_yaml(read_text(path), name)
    if data is None:
        raise fail(Mark(name, 1, 1), (), "empty spec: expected a mapping with `stages`")
    if not isinstance(data, Map):
        raise fail(Mark(name, 1, 1), (), f"a spec is a YAML mapping at top level, not a {_kind_of(data)}")
    return data


def _kind_of(value: Any) -> str:
    return {list: "list", Seq: "list", str: "string", bool: "boolean", int: "number",
            float: "number"}.get(type(value), type(value).__name__)



def copied(node: Any) -> Any:
    """A mapping or list of a marked tree copied one level deep, with its marks (the values are the original's):
    what changes a path of a tree copies the containers on its way, and shares the rest."""
    if isinstance(node, Map):
        out = Map(node.items(), node.mark)
        out.key_marks, out.value_marks, out.origin = dict(node.key_marks), dict(node.value_marks), node.origin
        return out
    return Seq(node, node.mark, node.item_marks)
