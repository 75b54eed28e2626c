"""Expansion: the resolved tree a user wrote in, plain layer entries out.

This pass consumes the spec's directives - `args` and `blocks` (reusable blocks, the library's among them),
`defaults`, the `width` / `depth` multipliers - and every entry's `when` and `repeat`, and evaluates the
expressions in values (`$c1`, `${in.channels // reduction}`). It walks the entries in order with the
shape each receives (asking `shape_of` for every entry's output), so `in` is known where it is used.

What it returns is a marked tree of the same shape in which every layer entry is `{kind: {field: value}}`
with nothing left to work out; `Map.origin` keeps the field path each entry was written at, so the
validator that follows reports problems where the user wrote them. Problems are collected, not raised: an
entry that fails is `FAILED` in its list, and the others are still expanded (and validated).
"""
from __future__ import annotations

import math
import dataclasses
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Annotated, Any, Callable, Final, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr, StringConstraints, TypeAdapter
from pydantic import ValidationError

from .diagnostics import FieldPath, Mark, Problem, hint, problem, short
from .expressions import (Channels, ChannelsFloat, Evaluation, ExpressionError, Incoming, is_channels, is_expression,
                          literal, parse, show, source)
from .kinds import REGISTRY, Activation, Flag, NonNegative, Shape, Size
from .loader import Map, Seq, marked, parse_yaml
from .located import pydantic_problems

MAX_REPEAT = 1000
MAX_BLOCK_DEPTH = 16
#: layers a spec may expand to (every layer, branches and repeats included): a ResNet-152 has about 500, and
#: the budget is checked while expanding, so a spec of nested repeats is refused before it costs anything
MAX_LAYERS = 5_000
#: top-level keys this pass consumes; what is left is validated as a `Spec` (`space:` is a design space's, read by
#: `space.load_space`; the spec itself is the network at its own values)
DIRECTIVES = ("args", "blocks", "defaults", "width", "depth", "width_divisor", "space", "train")
#: the types a block argument may declare (`types: {c2: [size, size]}`), as Pydantic checks them
ARGUMENT_TYPES: dict[str, Any] = {"size": Size, "count": NonNegative, "int": StrictInt,
                                  "number": Union[StrictInt, StrictFloat], "flag": Flag, "text": StrictStr,
                                  "activation": Optional[Activation]}


class _Failed:
    def __repr__(self) -> str:
        return "FAILED"


#: stands for an entry, or a list of entries, that could not be expanded (its problems are recorded)
FAILED: Final = _Failed()
ShapeOf = Callable[[Map, Shape], Optional[Shape]]  # an expanded entry and its input -> its output (None: unknown)


class Scaling(BaseModel):
    """Whole-spec multipliers, as in scaled model families."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    width: float = Field(1.0, gt=0, le=64, description="Multiplies every channel count written in the spec "
                                                      "(inside blocks too), rounded to `width_divisor`.")
    depth: float = Field(1.0, gt=0, le=64, description="Multiplies every explicit `repeat`, rounded up.")
    width_divisor: Size = Field(1, description="Scaled channel counts are rounded to a multiple of this "
                                              "(MobileNet uses 8).")

    def channels(self, value: Any) -> Any:
        """A channel count written at width 1, scaled; anything else (a count from `in`) as it is."""
        if self.width == 1 or type(value) is not int or value <= 0:
            return value
        d = self.width_divisor
        return max(d, int(value * self.width / d + 0.5) * d)

    def repeat(self, count: int) -> int:
        return min(MAX_REPEAT, math.ceil(count * self.depth))


ArgumentName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]


class Block(BaseModel):
    """A reusable, parameterised block: `blocks: {name: {args: {...}, layers: [...]}}`."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)
    doc: str = Field("", description="One line about the block, shown by `archspec blocks`.")
    args: dict[ArgumentName, Any] = Field(
        {}, description="Arguments and their defaults; null means required. Use them as `$name` in layers.")
    types: dict[ArgumentName, Any] = Field(
        {}, description="Types of arguments, checked at every use: size, count, int, number, flag, text, "
                        "activation, a list of types ([size, size]) or {one_of: [...]}.")
    layers: list[Any] = Field(min_length=1, description="The block's layers; `$name` is replaced by an argument.")


def argument_type(spec: Any) -> Any:
    """The Pydantic type of a block argument's declared type; `ValueError` for an unknown one."""
    if isinstance(spec, str) and spec in ARGUMENT_TYPES:
        return ARGUMENT_TYPES[spec]
    if isinstance(spec, list) and spec:
        n = len(spec)
        items = tuple(argument_type(s) for s in spec)
        return Annotated[tuple[items], Field(min_length=n, max_length=n)]  # type: ignore[valid-type]
    if isinstance(spec, dict) and list(spec) == ["one_of"] and isinstance(spec["one_of"], list) and spec["one_of"]:
        from typing import Literal

        return Literal[tuple(spec["one_of"])]
    raise ValueError(f"unknown type {short(spec)} (types: {', '.join(ARGUMENT_TYPES)}, [type, ...] or "
                     "{one_of: [...]})")


def argument_adapter(declared: Any) -> TypeAdapter[Any]:
    """The validator of a declared argument type, made once per type: building one costs a millisecond, and a
    block is used at every layer of a sampled network."""
    return _adapter(_frozen(plain(declared)))


@lru_cache(maxsize=256)
def _adapter(declared: Any) -> TypeAdapter[Any]:
    return TypeAdapter(argument_type(_thawed(declared)))


def _frozen(value: Any) -> Any:
    """A declared type as a hashable key: lists as tuples, mappings as sorted item tuples."""
    if isinstance(value, list):
        return tuple(_frozen(v) for v in value)
    if isinstance(value, dict):
        return ("{}",) + tuple(sorted((k, _frozen(v)) for k, v in value.items()))
    return value


def _thawed(value: Any) -> Any:
    if isinstance(value, tuple) and value[:1] == ("{}",):
        return {k: _thawed(v) for k, v in value[1:]}
    if isinstance(value, tuple):
        return [_thawed(v) for v in value]
    return value


@lru_cache(maxsize=None)
def library() -> Map:
    """The blocks shipped with archspec (`archspec/spec/library.yaml`), usable by name in every spec."""
    text = resources.files(__package__).joinpath("library.yaml").read_text(encoding="utf-8")
    tree = parse_yaml(text, "archspec/spec/library.yaml")
    assert isinstance(tree, Map) and isinstance(tree.get("blocks"), Map)
    return tree["blocks"]


@dataclass(frozen=True)
class Expanded:
    """The expanded tree (directives consumed) and the problems found on the way."""

    tree: Map
    problems: list[Problem]
    complete: bool = True  # False: expansion stopped (over budget); nothing after it can be checked


@dataclass
class Memo:
    """What the networks of one design space share, kept from one network to the next (`space.py`): an entry of a
    stage, expanded on the same input with the same values of the names it read, expands the same way (`entries`);
    an expanded entry validates to the same layer (`layers`), with the same output on the same input (`outputs`)
    and the same rows (`walked`). What is kept is kept alive here, so the ids in the keys stay theirs."""

    entries: dict[tuple[int, Shape], list[tuple[dict[str, Any], Map, int]]] = dataclasses.field(default_factory=dict)
    layers: dict[int, tuple[Any, Any]] = dataclasses.field(default_factory=dict)  # id(entry) -> (entry, layer or None)
    outputs: dict[tuple[int, Shape], Shape] = dataclasses.field(default_factory=dict)
    walked: dict[Any, Any] = dataclasses.field(default_factory=dict)
    items: list[Any] = dataclasses.field(default_factory=list)


class _Skip(Exception):
    """The entry being expanded failed; its problems are recorded."""


class _OverBudget(Exception):
    """The spec expands to more layers than allowed: expansion stops at once (its problem is recorded)."""


Scope = dict[str, tuple[Any, Mark]]  # `$name` -> (value, where it was written)
_UNKNOWN_INPUT: Final = object()  # `in` after an entry that failed: no further problem is worth reporting


class _Expansion:
    def __init__(self, defaults: dict[str, Map], blocks: dict[str, Map], scope: Scope, scaling: Scaling,
                 shape_of: ShapeOf, max_layers: int = MAX_LAYERS, memo: Optional[Memo] = None):
        self.defaults, self.blocks, self.scope, self.scaling = defaults, blocks, scope, scaling
        self.shape_of, self.max_layers, self.memo = shape_of, max_layers, memo
        self.reads: list[str] = []  # the names expressions read, in order (for the memo)
        self.layers = 0  # layers expanded so far, every copy of a repeat counted
        self.sizes: dict[int, int] = {}  # layers in an expanded entry (itself included), by id
        self.active: list[tuple[str, Mark]] = []  # blocks being expanded and where each is used
        self.site: Optional[tuple[str, Mark, FieldPath]] = None  # the library block being expanded, at its use
        self.reads_of_in = 0  # how often an expression read `in`: an entry that did not is the same at any input
        self.no_input = False  # evaluating a value outside the layers, where `in` means nothing
        self.problems: list[Problem] = []

    # -- problems --------------------------------------------------------------------------------------------
    def problem(self, mark: Mark, path: FieldPath, message: str) -> Problem:
        """A problem at `mark`; inside a library block, at the block's use (the user cannot edit the library)."""
        if self.site is not None:
            name, use, use_path = self.site
            return problem(use, use_path, f"{message} (in library block {name!r}, {mark.file}:{mark.line})")
        if self.active and mark.file == self.active[-1][1].file:
            name, use = self.active[-1]
            message += f" (in block {name!r} used at line {use.line})"
        return problem(mark, path, message)

    def report(self, found: list[Problem]) -> None:
        """Record `found`; if there is anything, the entry being expanded is skipped."""
        if found:
            self.problems += found
            raise _Skip

    def fail(self, mark: Mark, path: FieldPath, message: str) -> None:
        self.report([self.problem(mark, path, message)])

    # -- entries ---------------------------------------------------------------------------------------------
    def entries(self, seq: Any, path: FieldPath, mark: Mark, shape: Optional[Shape]
                ) -> tuple[Union[Seq, _Failed], list[Optional[Shape]]]:
        """A list of entries, expanded, and the output shape after each; a failed entry is `FAILED` in it."""
        if not isinstance(seq, Seq):
            self.problems.append(self.problem(mark, path, f"expected a list of layers, got {short(seq)}"))
            return FAILED, []
        out, outputs = Seq(mark=seq.mark), []
        for i, item in enumerate(seq):
            try:
                expanded = self.entry(item, path + (i,), seq.value_mark(i), shape)
            except _Skip:
                expanded = [(FAILED, None)]
            for entry, shape in expanded:  # the next item receives what the last copy gives
                out.append_marked(entry, seq.value_mark(i))
                outputs.append(shape)
        return out, outputs

    def entry(self, item: Any, path: FieldPath, mark: Mark, shape: Optional[Shape]
              ) -> list[tuple[Union[Map, _Failed], Optional[Shape]]]:
        """One list item - `{kind: body}` with optional `repeat: n` and `when: condition`, or a bare kind name -
        as entries, each with its output shape."""
        if isinstance(item, str):  # a bare kind name: `- flatten`
            kind, item = item, Map(mark=mark)
            item.set(kind, None, mark)
        if not isinstance(item, Map):
            self.fail(mark, path, f"expected a layer such as `conv: {{...}}`, got {short(item)}")
        kinds = [k for k in item if k not in ("repeat", "when")]
        if len(kinds) != 1:
            what = "no layer kind" if not kinds else f"several layer kinds ({', '.join(kinds)})"
            self.fail(mark, path, f"a layer entry has exactly one kind, found {what}; start a new list item (-) "
                                  "for each layer")
        kind = kinds[0]
        if not self.condition(item, "when", path, shape):
            self.spend(1, mark, path)  # an entry left out costs its condition: it counts against the budget too
            return []
        repeat = plain(self.substitute(item.get("repeat", 1), path + ("repeat",), item.value_mark("repeat"), shape))
        if type(repeat) is not int or not 1 <= repeat <= MAX_REPEAT:
            self.fail(item.value_mark("repeat"), path + ("repeat",),
                      f"repeat must be an integer from 1 to {MAX_REPEAT}, got {short(repeat)}")
        if "repeat" in item:
            repeat = self.scaling.repeat(repeat)
        results: list[tuple[Union[Map, _Failed], Optional[Shape]]] = []
        same: Optional[Map] = None  # the expansion every copy shares, once one has shown it does not read `in`
        last: Optional[tuple[Shape, Map]] = None  # the previous copy's input and expansion
        for copy in range(repeat):
            if same is not None:
                entry = same
            elif last is not None and last[0] == shape:  # the same entry on the same input expands the same way
                entry = last[1]
                self.spend(self.size(entry), mark, path)
            else:
                reads = self.reads_of_in
                entry = self.remembered(kind, item, path, mark, shape)
                if self.reads_of_in == reads:
                    same = entry
                    self.spend(self.size(entry) * (repeat - copy - 1), mark, path)  # the copies still to come
                last = (shape, entry) if shape is not None else None
            shape = self.shape_of(entry, shape) if shape is not None else None
            results.append((entry, shape))
        return results

    def size(self, entry: Any) -> int:
        """Layers in an expanded entry, itself included."""
        if not isinstance(entry, Map):
            return 0
        if id(entry) not in self.sizes:
            ((kind, body),) = entry.items()
            inner = [body[f] for f in REGISTRY[kind].children if f in body]
            self.sizes[id(entry)] = 1 + sum(self.size(e) for seqs in inner for e in _entries_in(seqs))
        return self.sizes[id(entry)]

    def spend(self, layers: int, mark: Mark, path: FieldPath) -> None:
        """Count `layers` more against the budget; past it, stop expanding altogether."""
        self.layers += layers
        if self.layers > self.max_layers:
            self.problems.append(self.problem(mark, path, f"the spec expands to more than {self.max_layers:,} "
                                                          "layers here (repeats and blocks multiplied out); raise "
                                                          "--max-layers if it is meant to be this large"))
            raise _OverBudget

    def condition(self, node: Map, key: str, path: FieldPath, shape: Optional[Shape]) -> bool:
        """`when: condition` of an entry or a branch (true when absent)."""
        if key not in node:
            return True
        value = self.substitute(node[key], path + (key,), node.value_mark(key), shape)
        if not isinstance(value, bool):
            self.fail(node.value_mark(key), path + (key,), f"`when` takes true or false, got {short(value)}")
        return bool(value)

    def remembered(self, kind: str, item: Map, path: FieldPath, mark: Mark, shape: Optional[Shape]) -> Map:
        """`expand_kind`, or for an entry of a stage what the memo kept of it: expanded on the same input, with the
        same values of every name its expressions read."""
        if self.memo is None or len(path) != 3 or path[0] != "stages" or shape is None:
            return self.expand_kind(kind, item, path, shape)
        key = (id(item), shape)
        for reads, entry, layers in self.memo.entries.get(key, ()):
            if all(name == "in" or (name in self.scope and _same(self.scope[name][0], value))
                   for name, value in reads.items()):
                self.spend(layers, mark, path)
                if "in" in reads:
                    self.reads_of_in += 1  # as the expansion it stands for did
                return entry
        start, problems, layers = len(self.reads), len(self.problems), self.layers
        entry = self.expand_kind(kind, item, path, shape)
        if len(self.problems) == problems and self.shape_of(entry, shape) is not None:  # valid, with a shape
            reads = {name: self.scope[name][0] if name in self.scope else None
                     for name in dict.fromkeys(self.reads[start:]) if name in self.scope or name == "in"}
            self.memo.entries.setdefault(key, []).append((reads, entry, self.layers - layers))
            self.memo.items.append(item)
        return entry

    def expand_kind(self, kind: str, item: Map, path: FieldPath, shape: Optional[Shape]) -> Map:
        where, mark = path + (kind,), item.key_mark(kind)
        if kind in self.blocks:
            return self.block(kind, item[kind], where, mark, shape)
        if kind not in REGISTRY:
            known = sorted(set(REGISTRY) | set(self.blocks))
            self.fail(mark, where, f"unknown layer kind {kind!r}{hint(kind, known)} (kinds: {', '.join(known)})")
        return self.layer(kind, item[kind], where, mark, shape)

    # -- values ----------------------------------------------------------------------------------------------
    def outside_layers(self, value: Any, path: FieldPath, mark: Mark) -> Any:
        """A value outside the layers (a spec argument, `input`, an auxiliary head's `after`), its expressions
        evaluated over the spec's arguments; a problem is recorded, and the value is then None."""
        self.no_input = True
        try:
            return self.substitute(value, path, mark, None)
        except _Skip:
            return None
        finally:
            self.no_input = False

    def substitute(self, value: Any, path: FieldPath, mark: Mark, shape: Optional[Shape],
                   skip: Any = ()) -> Any:
        """`value` with every expression evaluated (a reference keeps the mark of the value it names);
        the top-level keys in `skip` (fields holding entries) are left for their own entries."""
        found: list[Problem] = []

        def walk(value: Any, path: FieldPath, mark: Mark, top: bool = False) -> Any:
            if isinstance(value, str):
                return self.evaluate(value, path, mark, shape, found) if is_expression(value) else literal(value)
            if isinstance(value, Map):
                out = Map(mark=value.mark)
                for k, v in value.items():
                    inner = v if (top and k in skip) else walk(v, path + (k,), value.value_mark(k))
                    out.set(k, inner, self.origin(v, value.value_mark(k)), value.key_mark(k))
                return out
            if isinstance(value, Seq):
                return Seq([walk(v, path + (i,), value.value_mark(i)) for i, v in enumerate(value)], value.mark,
                           [self.origin(v, value.value_mark(i)) for i, v in enumerate(value)])
            return value

        out = walk(value, path, mark, top=True)
        self.report(found)
        return out

    def evaluate(self, text: str, path: FieldPath, mark: Mark, shape: Optional[Shape], found: list[Problem]) -> Any:
        names = {name: value for name, (value, _) in self.scope.items()}
        if not self.no_input:  # outside the layers there is no input shape to read
            names["in"] = Incoming(shape) if shape is not None else _UNKNOWN_INPUT
        evaluation = Evaluation(names, self.scaling.channels)
        try:
            value = evaluation(parse(source(text)))
            if isinstance(value, Incoming):
                raise ExpressionError("`in` is the shape the entry receives; use in.channels, in.height or in.width")
        except ExpressionError as e:
            if evaluation.used.get("in") is _UNKNOWN_INPUT:
                raise _Skip from None  # an entry before this one failed; its problem says why
            name = text[1:]
            if name.isidentifier() and name not in names:  # a plain `$name`: say it as an argument
                known = ", ".join(f"${k}" for k in self.scope) or "none"
                found.append(self.problem(mark, path, f"unknown argument {text!r}{hint(name, self.scope)} "
                                                      f"(arguments here: {known}; and $in, the input's shape)"))
                return None
            seen = "; ".join(f"{name} = {show(v)}" for name, v in evaluation.used.items())
            found.append(self.problem(mark, path, f"{text}: {e}" + (f" ({seen})" if seen else "")))
            return None
        if "in" in evaluation.used:
            self.reads_of_in += 1
            if evaluation.used["in"] is _UNKNOWN_INPUT:
                raise _Skip
        if self.memo is not None:
            self.reads += evaluation.used
        return value

    def origin(self, value: Any, mark: Mark) -> Mark:
        """Where a substituted value was written: at the argument's value for a plain `$name`."""
        if isinstance(value, str) and value.startswith("$") and value[1:] in self.scope:
            return self.scope[value[1:]][1]
        return mark

    # -- blocks ----------------------------------------------------------------------------------------------
    def block(self, name: str, body: Any, path: FieldPath, mark: Mark, shape: Optional[Shape]) -> Map:
        """A use of a reusable block: its layers with the arguments bound, as one `sequential` entry."""
        if name in (n for n, _ in self.active) or len(self.active) >= MAX_BLOCK_DEPTH:
            chain = " -> ".join([n for n, _ in self.active] + [name])
            self.fail(mark, path, f"block {name!r} uses itself ({chain})")
        if body is None:
            body = Map(mark=mark)
        if not isinstance(body, Map):
            self.fail(mark, path, f"block {name} takes a mapping of arguments, got {short(body)}")
        body = self.substitute(_with_defaults(self.defaults.get(name), body), path, mark, shape)
        definition = self.blocks[name]
        outer, outer_site = self.scope, self.site
        self.scope = self.bind(name, definition, body, path, mark, shape)
        if self.site is None and definition.mark.file == "archspec/spec/library.yaml":
            self.site = (name, mark, path)
        self.active.append((name, mark))
        try:
            layers, _ = self.entries(definition["layers"], path, mark, shape)
        finally:
            self.scope, self.site = outer, outer_site
            self.active.pop()
        assert isinstance(layers, Seq)  # the definition was checked to have a list of layers
        if len(layers) == 1 and layers[0] is not FAILED:
            return layers[0]
        seq = Map(mark=mark)
        seq.set("layers", layers, mark)
        seq.set("label", name, mark)
        return self.make("sequential", seq, path, mark)

    def bind(self, name: str, definition: Map, body: Map, path: FieldPath, mark: Mark,
             shape: Optional[Shape]) -> Scope:
        """The scope inside a use of block `name`: the outer arguments, then `body`, then the defaults of the
        arguments `body` leaves out, in order (a default may use `in`, the outer arguments and the arguments before
        it: `hidden: ${channels * 4}`); each argument of a declared type checked."""
        args: Map = definition.get("args") or Map()
        found = [self.problem(body.key_mark(arg), path + (arg,), f"block {name} has no argument {arg!r}"
                                                                 f"{hint(arg, args)} (arguments: "
                                                                 f"{', '.join(args) or 'none'})")
                 for arg in body if arg not in args]
        found += [self.problem(mark, path, f"block {name} needs argument {arg!r}") for arg in args
                  if args[arg] is None and arg not in body]
        self.report(found)
        outer = self.scope
        self.scope = scope = {**outer, **{arg: (value, body.value_mark(arg)) for arg, value in body.items()}}
        try:
            for arg, default in args.items():
                if default is not None and arg not in body:
                    scope[arg] = (self.substitute(default, path + (arg,), args.value_mark(arg), shape),
                                  args.value_mark(arg))
        finally:
            self.scope = outer
        for arg, declared in (definition.get("types") or Map()).items():
            if arg in scope and arg in args:
                value, where = scope[arg]
                found += [self.problem(Mark(p.file, p.line, p.col), p.path, p.message) for p in
                          check_value(argument_adapter(declared), value, path + (arg,), where)]
        self.report(found)
        return scope

    # -- layers ----------------------------------------------------------------------------------------------
    def layer(self, kind: str, body: Any, path: FieldPath, mark: Mark, shape: Optional[Shape]) -> Map:
        """An entry of a registered kind: defaults merged in, expressions evaluated, width scaled, child
        entries expanded (each child sequence receives this layer's input)."""
        cls = REGISTRY[kind]
        if body is not None and not isinstance(body, Map):
            if cls.shorthand is None:
                self.fail(mark, path, f"{kind} takes a mapping of fields, got {short(body)}")
            body = marked({cls.shorthand: body}, mark)
        body = _with_defaults(self.defaults.get(kind), body if body is not None else Map(mark=mark))
        body = self.substitute(body, path, mark, shape, skip=cls.children)
        for field in body:
            value = body[field]
            if field in cls.width_fields:
                value = [self.scaling.channels(v) for v in value] if isinstance(value, list) \
                    else self.scaling.channels(value)
            body.set(field, plain(value), body.value_mark(field), body.key_mark(field))
        for field, depth in cls.children.items():
            if field in body:
                body[field] = self.children(body[field], depth, path + (field,), body.value_mark(field), shape)
        return self.make(kind, body, path, mark)

    def children(self, value: Any, depth: int, path: FieldPath, mark: Mark, shape: Optional[Shape]) -> Any:
        """A field holding entries: a list of them (depth 1) or a list of branches (depth 2), a branch being a
        list of entries or `{when: condition, layers: [...]}`."""
        if depth == 1:
            return self.entries(value, path, mark, shape)[0]
        if not isinstance(value, Seq):
            self.problems.append(self.problem(mark, path, f"expected a list of branches, got {short(value)}"))
            return FAILED
        out = Seq(mark=value.mark)
        for i, branch in enumerate(value):
            where = path + (i,)
            if isinstance(branch, Map):
                unknown = [k for k in branch if k not in ("when", "layers")]
                if unknown or "layers" not in branch:
                    what = f"unknown key {unknown[0]!r}{hint(unknown[0], ('when', 'layers'))}" if unknown \
                        else "no `layers`"
                    self.problems.append(self.problem(value.value_mark(i), where, f"{what}: a branch is a list of "
                                                                                  "layers or {when: condition, "
                                                                                  "layers: [...]}"))
                    out.append_marked(FAILED, value.value_mark(i))
                    continue
                try:
                    if not self.condition(branch, "when", where, shape):
                        continue
                except _Skip:
                    out.append_marked(FAILED, value.value_mark(i))
                    continue
                branch, where = branch["layers"], where + ("layers",)
            out.append_marked(self.children(branch, depth - 1, where, value.value_mark(i), shape),
                              value.value_mark(i))
        return out

    def make(self, kind: str, body: Map, path: FieldPath, mark: Mark) -> Map:
        """The expanded entry `{kind: body}`; inside a library block, placed at the block's use."""
        self.spend(1, mark, path)
        if self.site is not None:
            _, mark, path = self.site
            body = _relabel(body, mark, REGISTRY[kind].children)
        entry = Map(mark=mark)
        entry.set(kind, body, mark)
        entry.origin = path
        return entry


def _same(a: Any, b: Any) -> bool:
    """The same value, of the same type (1, 1.0 and True expand differently)."""
    return type(a) is type(b) and a == b


def _entries_in(value: Any) -> list[Any]:
    """The entries of a child field: a list of entries, or a list of such lists."""
    if not isinstance(value, Seq):
        return []
    return [e for item in value for e in (_entries_in(item) if isinstance(item, Seq) else [item])]


def _with_defaults(defaults: Optional[Map], body: Map) -> Map:
    merged = Map(mark=body.mark)
    for source_ in (defaults or Map(), body):
        for key, value in source_.items():
            merged.set(key, value, source_.value_mark(key), source_.key_mark(key))
    return merged


def plain(value: Any) -> Any:
    """Values as Pydantic and MXNet take them: channel counts as plain integers, lists as lists."""
    if isinstance(value, Channels):
        return int(value)
    if isinstance(value, ChannelsFloat):
        return float(value)
    if isinstance(value, list) and any(is_channels(v) for v in value):
        return Seq([plain(v) for v in value], getattr(value, "mark", None), getattr(value, "item_marks", None))
    if isinstance(value, Map) and any(is_channels(v) or isinstance(v, (list, Map)) for v in value.values()):
        out = Map(mark=value.mark)
        for k, v in value.items():
            out.set(k, plain(v), value.value_mark(k), value.key_mark(k))
        return out
    return value


def _relabel(body: Map, mark: Mark, children: Any) -> Map:
    """`body` with every mark at `mark` (entries in child fields keep theirs)."""
    def walk(node: Any) -> Any:
        if isinstance(node, Map) and node.origin is None:
            out = Map(mark=mark)
            for k, v in node.items():
                out.set(k, walk(v), mark, mark)
            return out
        if isinstance(node, Seq):
            return Seq([walk(v) for v in node], mark, [mark] * len(node))
        return node

    out = Map(mark=mark)
    for k, v in body.items():
        out.set(k, v if k in children else walk(v), mark, mark)
    return out


def _field_adapter(cls: type[BaseModel], name: str) -> TypeAdapter[Any]:
    info = cls.model_fields[name]
    return TypeAdapter(Annotated[info.annotation, info])  # type: ignore[arg-type]


def check_value(adapter: TypeAdapter[Any], value: Any, path: FieldPath, at: Mark) -> list[Problem]:
    """The problems of `value` (written at `at`) against a field's or an argument's type; an expression is
    checked where it is used, once evaluated."""
    if is_expression(value):
        return []
    try:
        adapter.validate_python(plain(value))
        return []
    except ValidationError as err:
        return pydantic_problems(err, value, path, at=at)


def _defaults(raw: Any, mark: Mark, blocks: dict[str, Map], problems: list[Problem]) -> dict[str, Map]:
    """`defaults: {kind: {field: value}}` (or `{block: {argument: value}}`): every kind and field must exist
    and every value fit."""
    if raw is None:
        return {}
    if not isinstance(raw, Map):
        problems.append(problem(mark, ("defaults",), f"expected a mapping of layer kinds, got {short(raw)}"))
        return {}
    out = {}
    for kind, fields in raw.items():
        path = ("defaults", kind)
        if kind not in REGISTRY and kind not in blocks:
            known = set(REGISTRY) | set(blocks)
            problems.append(problem(raw.key_mark(kind), path, f"unknown layer kind {kind!r}{hint(kind, known)}"))
        elif not isinstance(fields, Map):
            problems.append(problem(raw.value_mark(kind), path, f"expected a mapping of fields, got {short(fields)}"))
        else:
            for name, value in fields.items():
                problems += _default(kind, blocks.get(kind), name, value, path + (name,), fields)
            out[kind] = fields
    return out


def _default(kind: str, block: Optional[Map], name: str, value: Any, path: FieldPath, fields: Map) -> list[Problem]:
    """The problems of one default: a field of a kind, or an argument of a block."""
    if block is not None:
        args, types = block.get("args") or Map(), block.get("types") or Map()
        if name not in args:
            return [problem(fields.key_mark(name), path, f"block {kind} has no argument {name!r}{hint(name, args)}")]
        if name not in types:
            return []
        return check_value(argument_adapter(types[name]), value, path, fields.value_mark(name))
    cls = REGISTRY[kind]
    if name not in cls.model_fields or name in cls.children:
        return [problem(fields.key_mark(name), path, f"{kind} has no field {name!r}{hint(name, cls.model_fields)}")]
    return check_value(_field_adapter(cls, name), value, path, fields.value_mark(name))


def check_model(model: type[BaseModel], raw: Any, path: FieldPath, problems: list[Problem]) -> Any:
    """`model` validated from a marked mapping, or None with its problems recorded."""
    try:
        return model.model_validate(dict(raw) if isinstance(raw, Map) else raw)
    except ValidationError as err:
        problems.extend(pydantic_problems(err, raw, path, model.model_fields))
        return None


def check_blocks(raw: Any, mark: Mark, problems: list[Problem], library: bool = False) -> dict[str, Map]:
    """Block definitions: each a valid `Block`, named as no layer kind is, with known argument types. A kind
    registered under the name of a library block replaces it (the user asked for it by name)."""
    path: FieldPath = ("blocks",)
    if raw is None:
        return {}
    if not isinstance(raw, Map):
        problems.append(problem(mark, path, f"expected a mapping of block definitions, got {short(raw)}"))
        return {}
    blocks = {}
    for name, definition in raw.items():
        where = path + (name,)
        if library and name in REGISTRY:
            continue
        if name in REGISTRY or not name.isidentifier():
            why = "is a built-in layer kind" if name in REGISTRY else "is not an identifier"
            problems.append(problem(raw.key_mark(name), where, f"block name {name!r} {why}"))
            continue
        block = check_model(Block, definition, where, problems)
        if block is None:
            continue
        bad = False
        for arg, declared in block.types.items():
            types = definition["types"]
            if arg not in block.args:
                problems.append(problem(types.key_mark(arg), where + ("types", arg), f"no argument {arg!r} to type"))
                bad = True
                continue
            try:
                argument_type(plain(declared))
            except ValueError as e:
                problems.append(problem(types.value_mark(arg), where + ("types", arg), str(e)))
                bad = True
        if not bad:
            blocks[name] = definition
    return blocks


@lru_cache(maxsize=4)
def _library_blocks(kinds: tuple[str, ...]) -> dict[str, Map]:
    """The library's blocks, checked once for the kinds registered (a kind of a block's name replaces it)."""
    problems: list[Problem] = []
    blocks = check_blocks(library(), library().mark, problems, library=True)
    assert not problems, problems  # the library is tested; a problem here is a bug of archspec's
    return blocks


def input_shape(raw: Map) -> Optional[Shape]:
    """The spec's input shape if it is well formed (else the validator reports it, and nothing reads `in`)."""
    node = raw.get("input")
    if not isinstance(node, Map):
        return None
    dims = [node.get(k) for k in ("channels", "height", "width")]
    return tuple(dims) if all(type(d) is int and d >= 1 for d in dims) else None  # type: ignore[arg-type]


def expand(raw: Map, shape_of: ShapeOf, max_layers: int = MAX_LAYERS, memo: Optional[Memo] = None) -> Expanded:
    """Expand a resolved spec tree: directives consumed, every stage and auxiliary head's layers expanded with
    the shapes they receive (`shape_of` gives each expanded entry's output), at most `max_layers` layers; `memo`:
    what the networks of a design space share (see `Memo`)."""
    problems: list[Problem] = []
    blocks = {**_library_blocks(tuple(REGISTRY)),
              **check_blocks(raw.get("blocks"), raw.value_mark("blocks"), problems)}
    defaults = _defaults(raw.get("defaults"), raw.value_mark("defaults"), blocks, problems)
    multipliers = Map(mark=raw.mark)
    for key in ("width", "depth", "width_divisor"):
        if key in raw:
            multipliers.set(key, raw[key], raw.value_mark(key), raw.key_mark(key))
    scaling = check_model(Scaling, multipliers, (), problems) or Scaling()
    args = raw.get("args") or Map()
    if not isinstance(args, Map):
        problems.append(problem(raw.value_mark("args"), ("args",), f"expected a mapping, got {short(args)}"))
        args = Map()
    expansion = _Expansion(defaults, blocks, {}, scaling, shape_of, max_layers, memo)
    for name, value in args.items():  # in order: an argument may use the ones before it
        expansion.scope[name] = (expansion.outside_layers(value, ("args", name), args.value_mark(name)),
                                 args.value_mark(name))
    if isinstance(raw.get("input"), Map):
        raw = _with(raw, "input", expansion.outside_layers(raw["input"], ("input",), raw.value_mark("input")))
    try:
        expanded = _expand_layers(raw, expansion)
    except _OverBudget:
        return Expanded(raw, problems + expansion.problems, complete=False)
    tree = Map(mark=raw.mark)
    for key, value in raw.items():
        if key not in DIRECTIVES:
            tree.set(key, expanded.get(key, value), raw.value_mark(key), raw.key_mark(key))
    return Expanded(tree, problems + expansion.problems)


def _expand_layers(raw: Map, expansion: _Expansion) -> dict[str, Any]:
    """The stages' and the auxiliary heads' layers, expanded."""
    expanded: dict[str, Any] = {}
    taps: dict[str, Optional[Shape]] = {}  # `b4` and `b4.0` -> the output there, for the auxiliary heads
    stages = raw.get("stages")
    if isinstance(stages, Map):
        shape, out = input_shape(raw), Map(mark=stages.mark)
        for name, layers in stages.items():
            seq, outputs = expansion.entries(layers, ("stages", name), stages.value_mark(name), shape)
            taps.update({f"{name}.{i}": s for i, s in enumerate(outputs)})
            shape = taps[name] = outputs[-1] if outputs else shape
            out.set(name, seq, stages.value_mark(name), stages.key_mark(name))
        expanded["stages"] = out
    heads = raw.get("aux")
    if isinstance(heads, Map):
        out = Map(mark=heads.mark)
        for name, head in heads.items():
            out.set(name, _aux(expansion, name, head, taps), heads.value_mark(name), heads.key_mark(name))
        expanded["aux"] = out
    return expanded


def _aux(expansion: _Expansion, name: str, head: Any, taps: dict[str, Optional[Shape]]) -> Any:
    """An auxiliary head with its `after` and `weight` evaluated and its layers expanded on the shape at its tap
    (a head that is not a mapping, or a tap that does not exist, is the validator's to report)."""
    if not isinstance(head, Map):
        return head
    out = Map(mark=head.mark)
    for key, value in head.items():
        if key in ("after", "weight"):
            value = expansion.outside_layers(value, ("aux", name, key), head.value_mark(key))
        out.set(key, value, head.value_mark(key), head.key_mark(key))
    if isinstance(out.get("layers"), Seq):
        shape = taps.get(out["after"]) if isinstance(out.get("after"), str) else None
        layers, _ = expansion.entries(out["layers"], ("aux", name, "layers"), out.value_mark("layers"), shape)
        out.set("layers", layers, out.value_mark("layers"), out.key_mark("layers"))
    return out


def _with(node: Map, key: str, value: Any) -> Map:
    """A copy of `node` with `key` set to `value` (at the same marks)."""
    out = Map(mark=node.mark)
    for k, v in node.items():
        out.set(k, value if k == key else v, node.value_mark(k), node.key_mark(k))
    return out
