"""Expansion and validation, in one pass: the resolved tree a user wrote in, validated layers out.

This pass consumes the spec's directives - `args` and `blocks` (reusable blocks, the library's among them),
`defaults`, the `width` / `depth` multipliers - and every entry's `when` and `repeat`, and evaluates the
expressions in values (`$c1`, `${in.channels // reduction}`). It walks the entries in order with the shape
each receives, and validates each entry as it makes it: an `Entry` is the expanded entry `{kind: {field:
value}}` with nothing left to work out (what `archspec resolve --expand` prints) and its validated layer, whose
output (`walk.measure`) is the input of the next, so `in` is known where it is used.

Problems are collected, not raised, at the place the user wrote: an entry that fails is left out of its list,
its list fails, and the entries after it are still expanded and validated (on an input now unknown).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Final, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .blocks import LIBRARY_FILE, argument_adapter, check_blocks, is_required, library_blocks
from .diagnostics import FieldPath, Mark, Problem, SpecError, hint, problem, short
from .expressions import Evaluation, ExpressionError, Incoming, is_expression, literal, make_divisible, parse, show, source
from .kinds import REGISTRY, Layer, Shape, Size
from .loader import Map, Seq, marked
from .located import check_model, check_value, field_adapter, plain, pydantic_problems
from .walk import measure

MAX_REPEAT = 1000
MAX_BLOCK_DEPTH = 16
#: layers a spec may expand to (every layer, branches and repeats included): a ResNet-152 has about 500, and
#: the budget is checked while expanding, so a spec of nested repeats is refused before it costs anything
MAX_LAYERS = 5_000
#: top-level keys this pass consumes; what is left is validated as a `Spec` (`space:` is a design space's, read by
#: `space.load_space`; the spec itself is the network at its own values)
DIRECTIVES = ("args", "blocks", "defaults", "width", "depth", "width_divisor", "space", "train")


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
        return make_divisible(value * self.width, self.width_divisor)

    def repeat(self, count: int) -> int:
        return min(MAX_REPEAT, math.ceil(count * self.depth))


@dataclass(frozen=True)
class Entry:
    """One layer entry, expanded and validated: the marked tree it expands to (`{kind: {field: value}}`), its layer,
    and how many layers it counts against the budget (itself and those inside it)."""

    tree: Map
    layer: Layer
    size: int


@dataclass(frozen=True)
class Listed:
    """A list of entries, every one expanded and validated: as a marked list, as entries, and as layers."""

    tree: Seq
    entries: tuple[Entry, ...]

    @property
    def layers(self) -> tuple[Layer, ...]:
        return tuple(e.layer for e in self.entries)

    @property
    def size(self) -> int:
        return sum(e.size for e in self.entries)


@dataclass(frozen=True)
class Nested:
    """A list of branches (a field such as `parallel`'s `branches`), every entry in them expanded and validated."""

    tree: Seq
    branches: tuple[Listed | Nested, ...]

    @property
    def layers(self) -> tuple[Any, ...]:
        return tuple(b.layers for b in self.branches)

    @property
    def size(self) -> int:
        return sum(b.size for b in self.branches)


@dataclass(frozen=True)
class Expanded:
    """A spec expanded and validated, short of the `Spec` itself: the tree (directives consumed), the layers of each
    stage and auxiliary head (None where an entry failed; no stages when `stages` is not a mapping), and the
    problems found on the way."""

    tree: Map
    stages: Optional[dict[str, Optional[tuple[Layer, ...]]]]
    heads: dict[str, Optional[tuple[Layer, ...]]]
    problems: list[Problem]
    complete: bool = True  # False: expansion stopped (over budget); nothing after it can be checked


@dataclass
class Memo:
    """What the networks of one design space share (`space.py`): an entry of the space's own stages, expanded on the
    same input with the same values of every name it read, is the same entry. Keyed by value - the entry's place,
    its input shape and those values - and used only while the entry is still the one the space wrote there (a
    drawn value placed inside an entry makes a new one)."""

    stages: Any  # the space's own stages (a Map)
    #: (stage, index, input) -> (names read, their values) -> (the entry, layers it spent)
    entries: dict[tuple[str, int, Shape], dict[tuple[Any, ...], tuple[Entry, int]]] = dataclasses.field(
        default_factory=dict)
    #: (stage, index, input) -> the sets of names its expansions read (a few: one per `when` taken, say)
    names: dict[tuple[str, int, Shape], dict[tuple[str, ...], None]] = dataclasses.field(default_factory=dict)

    def own(self, path: FieldPath, item: Any) -> bool:
        """Whether `item`, at `path` (`stages`, name, index), is the space's own entry."""
        stage = self.stages.get(path[1]) if isinstance(self.stages, Map) else None
        return isinstance(stage, Seq) and isinstance(path[2], int) and path[2] < len(stage) and stage[path[2]] is item


class _Skip(Exception):
    """The entry being expanded failed; its problems are recorded."""


class _OverBudget(Exception):
    """The spec expands to more layers than allowed: expansion stops at once (its problem is recorded)."""


Scope = dict[str, tuple[Any, Mark]]  # `$name` -> (value, where it was written)
_UNKNOWN_INPUT: Final = object()  # `in` after an entry that failed: no further problem is worth reporting


class _Expansion:
    """The expansion of one spec. Holds what stays fixed (the defaults, the blocks, the scaling, the budget, the
    memo of a design space), where the walk is (the arguments in scope, the blocks being expanded, the library
    block's use), and what it has found so far (the layers spent against the budget, the names expressions read,
    how often they read `in`, and the problems)."""

    def __init__(self, defaults: dict[str, Map], blocks: dict[str, Optional[Map]], scope: Scope, scaling: Scaling,
                 max_layers: int = MAX_LAYERS, memo: Optional[Memo] = None):
        self.defaults, self.blocks, self.scope, self.scaling = defaults, blocks, scope, scaling
        self.max_layers, self.memo = max_layers, memo
        self.reads: list[str] = []  # the names expressions read, in order (for the memo)
        self.layers = 0  # layers expanded so far, every copy of a repeat counted
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

    def skip_if(self, found: list[Problem]) -> None:
        """Record `found`; if there is anything, the entry being expanded is skipped."""
        if found:
            self.problems += found
            raise _Skip

    def skip(self, mark: Mark, path: FieldPath, message: str) -> None:
        """Record the problem, and skip the entry being expanded."""
        self.skip_if([self.problem(mark, path, message)])

    # -- entries ---------------------------------------------------------------------------------------------
    def entries(self, seq: Any, path: FieldPath, mark: Mark, shape: Optional[Shape]
                ) -> tuple[Optional[Listed], list[Optional[Shape]]]:
        """A list of entries, expanded and validated (None if one failed), and the output shape after each."""
        if not isinstance(seq, Seq):
            self.problems.append(self.problem(mark, path, f"expected a list of layers, got {short(seq)}"))
            return None, []
        out, entries, outputs, failed = Seq(mark=seq.mark), [], [], False
        for i, item in enumerate(seq):
            try:
                expanded = self.entry(item, path + (i,), seq.value_mark(i), shape)
            except _Skip:
                expanded, failed = [(None, None)], True
            for entry, shape in expanded:  # the next item receives what the last copy gives
                if entry is not None:
                    out.append_marked(entry.tree, seq.value_mark(i))
                    entries.append(entry)
                outputs.append(shape)
        return (None if failed else Listed(out, tuple(entries))), outputs

    def entry(self, item: Any, path: FieldPath, mark: Mark, shape: Optional[Shape]
              ) -> list[tuple[Optional[Entry], Optional[Shape]]]:
        """One list item - `{kind: body}` with optional `repeat: n` and `when: condition`, or a bare kind name -
        as entries, each with its output shape."""
        if isinstance(item, str):  # a bare kind name: `- flatten`
            kind, item = item, Map(mark=mark)
            item.set(kind, None, mark)
        if not isinstance(item, Map):
            self.skip(mark, path, f"expected a layer such as `conv: {{...}}`, got {short(item)}")
        kinds = [k for k in item if k not in ("repeat", "when")]
        if len(kinds) != 1:
            what = "no layer kind" if not kinds else f"several layer kinds ({', '.join(kinds)})"
            self.skip(mark, path, f"a layer entry has exactly one kind, found {what}; start a new list item (-) "
                                  "for each layer")
        kind = kinds[0]
        if not self.condition(item, "when", path, shape):
            self.spend(1, mark, path)  # an entry left out costs its condition: it counts against the budget too
            return []
        repeat = plain(self.substitute(item.get("repeat", 1), path + ("repeat",), item.value_mark("repeat"), shape))
        if type(repeat) is not int or not 0 <= repeat <= MAX_REPEAT:
            self.skip(item.value_mark("repeat"), path + ("repeat",),
                      f"repeat must be an integer from 0 to {MAX_REPEAT}, got {short(repeat)}")
        if repeat == 0:  # `repeat: ${reps - 1}` with reps 1: no copy, as an entry whose `when` fails
            self.spend(1, mark, path)
            return []
        if "repeat" in item:
            repeat = self.scaling.repeat(repeat)
        return self.copies(kind, item, path, mark, shape, repeat)

    def copies(self, kind: str, item: Map, path: FieldPath, mark: Mark, shape: Optional[Shape], repeat: int
               ) -> list[tuple[Optional[Entry], Optional[Shape]]]:
        """The `repeat` copies of an entry, each on what the one before gives: expanded again only where that can
        change them (an expansion that read no `in` is the same on any input)."""
        results: list[tuple[Optional[Entry], Optional[Shape]]] = []
        same: Optional[Entry] = None  # the entry every copy shares, once one has shown it does not read `in`
        last: Optional[tuple[Shape, Entry]] = None  # the previous copy's input and entry
        for copy in range(repeat):
            if same is not None:
                entry = same
            elif last is not None and last[0] == shape:  # the same entry on the same input expands the same way
                entry = last[1]
                self.spend(entry.size, mark, path)
            else:
                reads = self.reads_of_in
                entry = self.remembered(kind, item, path, mark, shape)
                if self.reads_of_in == reads:
                    same = entry
                    self.spend(entry.size * (repeat - copy - 1), mark, path)  # the copies still to come
                last = (shape, entry) if shape is not None else None
            shape = self.output(entry, shape)
            results.append((entry, shape))
        return results

    def output(self, entry: Entry, shape: Optional[Shape]) -> Optional[Shape]:
        """What `entry` gives on `shape` (None when `shape` is unknown, or the layer cannot take it: a problem)."""
        if shape is None:
            return None
        try:
            return measure(entry.layer, shape).output
        except SpecError as e:
            self.problems += e.problems
            return None

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
            self.skip(node.value_mark(key), path + (key,), f"`when` takes true or false, got {short(value)}")
        return bool(value)

    def remembered(self, kind: str, item: Map, path: FieldPath, mark: Mark, shape: Optional[Shape]) -> Entry:
        """`expand_kind`, or for an entry of a stage what the memo kept of it: expanded on the same input, with the
        same values of every name its expressions read."""
        if self.memo is None or len(path) != 3 or path[0] != "stages" or shape is None \
                or not self.memo.own(path, item):
            return self.expand_kind(kind, item, path, shape)
        key = (str(path[1]), int(path[2]), shape)
        for names in self.memo.names.get(key, ()):  # each set of names an expansion of this entry has read
            if all(name == "in" or name in self.scope for name in names):
                found = self.memo.entries[key].get((names, self.values(names)))
                if found is not None:
                    entry, layers = found
                    self.spend(layers, mark, path)
                    if "in" in names:
                        self.reads_of_in += 1  # as the expansion it stands for did
                    return entry
        start, problems, layers = len(self.reads), len(self.problems), self.layers
        entry = self.expand_kind(kind, item, path, shape)
        if len(self.problems) == problems and self.output(entry, shape) is not None:  # valid, with a shape
            names = tuple(name for name in dict.fromkeys(self.reads[start:]) if name in self.scope or name == "in")
            self.memo.names.setdefault(key, {})[names] = None
            self.memo.entries.setdefault(key, {})[names, self.values(names)] = (entry, self.layers - layers)
        return entry

    def values(self, names: tuple[str, ...]) -> tuple[Any, ...]:
        """The values of `names` in scope, as a key (`in` is the memo key's input shape)."""
        return tuple(_frozen(self.scope[name][0]) for name in names if name != "in")

    def expand_kind(self, kind: str, item: Map, path: FieldPath, shape: Optional[Shape]) -> Entry:
        where, mark = path + (kind,), item.key_mark(kind)
        if kind in self.blocks:
            return self.block(kind, item[kind], where, mark, shape)
        if kind not in REGISTRY:
            known = sorted(set(REGISTRY) | {n for n, d in self.blocks.items() if d is not None})  # not the broken
            self.skip(mark, where, f"unknown layer kind {kind!r}{hint(kind, known)} (kinds: {', '.join(known)})")
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
        self.skip_if(found)
        return out

    def evaluate(self, text: str, path: FieldPath, mark: Mark, shape: Optional[Shape], found: list[Problem]) -> Any:
        names = {name: value for name, (value, _) in self.scope.items()}
        if not self.no_input:  # outside the layers there is no input shape to read
            names["in"] = Incoming(shape) if shape is not None else _UNKNOWN_INPUT
        evaluation = Evaluation(names, self.scaling.channels, self.scaling.width)
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
    def block(self, name: str, body: Any, path: FieldPath, mark: Mark, shape: Optional[Shape]) -> Entry:
        """A use of a reusable block: its layers with the arguments bound, as one `sequential` entry."""
        definition = self.blocks[name]
        if definition is None:
            raise _Skip  # a definition with a problem, reported there once
        if name in (n for n, _ in self.active) or len(self.active) >= MAX_BLOCK_DEPTH:
            chain = " -> ".join([n for n, _ in self.active] + [name])
            self.skip(mark, path, f"block {name!r} uses itself ({chain})")
        if body is None:
            body = Map(mark=mark)
        if not isinstance(body, Map):
            self.skip(mark, path, f"block {name} takes a mapping of arguments, got {short(body)}")
        body = self.substitute(_with_defaults(self.defaults.get(name), body), path, mark, shape)
        outer, outer_site = self.scope, self.site
        self.scope = self.bind(name, definition, body, path, mark, shape)
        if self.site is None and definition.mark.file == LIBRARY_FILE:
            self.site = (name, mark, path)
        self.active.append((name, mark))
        try:
            layers, _ = self.entries(definition["layers"], path, mark, shape)
        finally:
            self.scope, self.site = outer, outer_site
            self.active.pop()
        if layers is None:
            raise _Skip  # its problems are recorded
        if len(layers.entries) == 1:
            return layers.entries[0]
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
                  if is_required(args[arg]) and arg not in body]
        self.skip_if(found)
        outer = self.scope
        self.scope = scope = {**outer, **{arg: (value, body.value_mark(arg)) for arg, value in body.items()}}
        try:
            for arg, default in args.items():
                if not is_required(default) and arg not in body:
                    scope[arg] = (self.substitute(default, path + (arg,), args.value_mark(arg), shape),
                                  args.value_mark(arg))
        finally:
            self.scope = outer
        for arg, declared in (definition.get("types") or Map()).items():
            if arg in scope and arg in args:
                value, where = scope[arg]
                found += [self.problem(Mark(p.file, p.line, p.col), p.path, p.message) for p in
                          check_value(argument_adapter(declared), value, path + (arg,), where)]
        self.skip_if(found)
        return scope

    # -- layers ----------------------------------------------------------------------------------------------
    def layer(self, kind: str, body: Any, path: FieldPath, mark: Mark, shape: Optional[Shape]) -> Entry:
        """An entry of a registered kind: defaults merged in, expressions evaluated, width scaled, child
        entries expanded (each child sequence receives this layer's input)."""
        cls = REGISTRY[kind]
        if body is not None and not isinstance(body, Map):
            if cls.shorthand is None:
                self.skip(mark, path, f"{kind} takes a mapping of fields, got {short(body)}")
            body = marked({cls.shorthand: body}, mark)
        body = _with_defaults(self.defaults.get(kind), body if body is not None else Map(mark=mark))
        body = self.substitute(body, path, mark, shape, skip=cls.children)
        for field in body:
            value = body[field]
            if field in cls.width_fields:
                value = [self.scaling.channels(v) for v in value] if isinstance(value, list) \
                    else self.scaling.channels(value)
            body.set(field, plain(value), body.value_mark(field), body.key_mark(field))
        failed = False
        for field, depth in cls.children.items():
            if field in body:
                listed = self.children(body[field], depth, path + (field,), body.value_mark(field), shape)
                failed = failed or listed is None
                body[field] = listed
        if failed:
            raise _Skip  # the problems of the entries inside are recorded
        return self.make(kind, body, path, mark)

    def children(self, value: Any, depth: int, path: FieldPath, mark: Mark, shape: Optional[Shape]
                 ) -> Optional[Listed | Nested]:
        """A field holding entries: a list of them (depth 1) or a list of branches (depth 2), a branch being a
        list of entries or `{when: condition, layers: [...]}`; None if any failed (every one is still expanded)."""
        if depth == 1:
            return self.entries(value, path, mark, shape)[0]
        if not isinstance(value, Seq):
            self.problems.append(self.problem(mark, path, f"expected a list of branches, got {short(value)}"))
            return None
        out, branches, failed = Seq(mark=value.mark), [], False
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
                    failed = True
                    continue
                try:
                    if not self.condition(branch, "when", where, shape):
                        continue
                except _Skip:
                    failed = True
                    continue
                branch, where = branch["layers"], where + ("layers",)
            inner = self.children(branch, depth - 1, where, value.value_mark(i), shape)
            if inner is None:
                failed = True
                continue
            out.append_marked(inner.tree, value.value_mark(i))
            branches.append(inner)
        return None if failed else Nested(out, tuple(branches))

    def make(self, kind: str, body: Map, path: FieldPath, mark: Mark) -> Entry:
        """The entry `{kind: body}`, validated as its kind (its child fields hold entries already made); inside a
        library block, placed at the block's use."""
        self.spend(1, mark, path)
        cls = REGISTRY[kind]
        if self.site is not None:
            _, mark, path = self.site
            body = _relabel(body, mark, cls.children)
        tree, fields, size = Map(mark=body.mark), Map(mark=body.mark), 1
        for key, value in body.items():
            if key in cls.children:
                size += value.size
                tree.set(key, value.tree, body.value_mark(key), body.key_mark(key))
                value = value.layers
            else:
                tree.set(key, value, body.value_mark(key), body.key_mark(key))
            fields.set(key, value, body.value_mark(key), body.key_mark(key))
        entry = Map(mark=mark)
        entry.set(kind, tree, mark)
        entry.origin = path
        return Entry(entry, self.validated(cls, fields, mark, path), size)

    def validated(self, cls: type[Layer], fields: Map, mark: Mark, path: FieldPath) -> Layer:
        """`fields` as a layer of kind `cls`, written at `mark` and `path`; its problems recorded and the entry
        skipped if it is not one."""
        try:
            layer = cls.model_validate(dict(fields))
        except ValidationError as err:
            self.skip_if(pydantic_problems(err, fields, path, cls.model_fields))
        except Exception as e:  # a validator of the user's own kind that raised something else
            if cls.__module__.startswith("archspec."):
                raise
            self.skip_if([problem(mark, path, f"{cls.kind}: {type(e).__name__}: {e}")])
        assert isinstance(layer, Layer)
        layer._mark, layer._source = mark, path
        return layer


def _frozen(value: Any) -> Any:
    """`value` as a hashable key, its type included (1, 1.0 and True expand differently)."""
    if isinstance(value, dict):
        return ("{}",) + tuple((k, _frozen(v)) for k, v in value.items())
    if isinstance(value, list):
        return ("[]",) + tuple(_frozen(v) for v in value)
    try:
        hash(value)
    except TypeError:
        return (type(value), repr(value))
    return (type(value), value)


def _with_defaults(defaults: Optional[Map], body: Map) -> Map:
    merged = Map(mark=body.mark)
    for source_ in (defaults or Map(), body):
        for key, value in source_.items():
            merged.set(key, value, source_.value_mark(key), source_.key_mark(key))
    return merged


def _relabel(body: Map, mark: Mark, children: Any) -> Map:
    """`body` with every mark inside the library at `mark`, the block's use (entries in child fields keep theirs);
    a value the user wrote elsewhere, a default of the spec's `defaults:`, keeps its own line."""
    def at(where: Mark) -> Mark:
        return mark if where.file == LIBRARY_FILE else where

    def walk(node: Any) -> Any:
        if isinstance(node, Map) and node.origin is None:
            out = Map(mark=mark)
            for k, v in node.items():
                out.set(k, walk(v), at(node.value_mark(k)), at(node.key_mark(k)))
            return out
        if isinstance(node, Seq):
            return Seq([walk(v) for v in node], mark, [mark] * len(node))
        return node

    out = Map(mark=mark)
    for k, v in body.items():
        out.set(k, v if k in children else walk(v), at(body.value_mark(k)), at(body.key_mark(k)))
    return out


def _defaults(raw: Any, mark: Mark, blocks: dict[str, Optional[Map]], problems: list[Problem]) -> dict[str, Map]:
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
            known = set(REGISTRY) | {n for n, d in blocks.items() if d is not None}
            problems.append(problem(raw.key_mark(kind), path, f"unknown layer kind {kind!r}{hint(kind, known)}"))
        elif not isinstance(fields, Map):
            problems.append(problem(raw.value_mark(kind), path, f"expected a mapping of fields, got {short(fields)}"))
        else:
            if kind in REGISTRY or blocks[kind] is not None:  # a block whose definition has a problem: said there
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
    return check_value(field_adapter(cls, name), value, path, fields.value_mark(name))


def input_shape(raw: Map) -> Optional[Shape]:
    """The spec's input shape if it is well formed (else the validator reports it, and nothing reads `in`)."""
    node = raw.get("input")
    if not isinstance(node, Map):
        return None
    dims = [node.get(k) for k in ("channels", "height", "width")]
    return tuple(dims) if all(type(d) is int and d >= 1 for d in dims) else None  # type: ignore[arg-type]


def expand(raw: Map, max_layers: int = MAX_LAYERS, memo: Optional[Memo] = None) -> Expanded:
    """Expand and validate a resolved spec tree's layers: directives consumed, every stage and auxiliary head's
    layers expanded with the shapes they receive and validated, at most `max_layers` layers; `memo`: what the
    networks of a design space share (see `Memo`)."""
    problems: list[Problem] = []
    blocks = {**library_blocks(tuple(REGISTRY)),
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
    expansion = _Expansion(defaults, blocks, {}, scaling, max_layers, memo)
    for name, value in args.items():  # in order: an argument may use the ones before it
        expansion.scope[name] = (expansion.outside_layers(value, ("args", name), args.value_mark(name)),
                                 args.value_mark(name))
    if isinstance(raw.get("input"), Map):
        raw = _with(raw, "input", expansion.outside_layers(raw["input"], ("input",), raw.value_mark("input")))
    layers = _Layers(raw, expansion)
    try:
        layers.expand()
    except _OverBudget:
        return Expanded(raw, None, {}, problems + expansion.problems, complete=False)
    tree = Map(mark=raw.mark)
    for key, value in raw.items():
        if key not in DIRECTIVES:
            tree.set(key, layers.trees.get(key, value), raw.value_mark(key), raw.key_mark(key))
    return Expanded(tree, layers.stages, layers.heads, problems + expansion.problems)


class _Layers:
    """The stages' and the auxiliary heads' layers of one spec, expanded: holds their trees (`stages`, `aux`), their
    layers, and the output at every tap (`b4`, `b4.0`) an auxiliary head may read."""

    def __init__(self, raw: Map, expansion: _Expansion) -> None:
        self.raw, self.expansion = raw, expansion
        self.trees: dict[str, Map] = {}
        self.stages: Optional[dict[str, Optional[tuple[Layer, ...]]]] = None
        self.heads: dict[str, Optional[tuple[Layer, ...]]] = {}
        self.taps: dict[str, Optional[Shape]] = {}

    def expand(self) -> None:
        stages, heads = self.raw.get("stages"), self.raw.get("aux")
        if isinstance(stages, Map):
            self.stages, shape, out = {}, input_shape(self.raw), Map(mark=stages.mark)
            for name, layers in stages.items():
                listed, outputs = self.expansion.entries(layers, ("stages", name), stages.value_mark(name), shape)
                self.taps.update({f"{name}.{i}": s for i, s in enumerate(outputs)})
                shape = self.taps[name] = outputs[-1] if outputs else shape
                self.stages[name] = listed.layers if listed else None
                out.set(name, listed.tree if listed else layers, stages.value_mark(name), stages.key_mark(name))
            self.trees["stages"] = out
        if isinstance(heads, Map):
            out = Map(mark=heads.mark)
            for name, head in heads.items():
                out.set(name, self.head(name, head), heads.value_mark(name), heads.key_mark(name))
            self.trees["aux"] = out

    def head(self, name: str, head: Any) -> Any:
        """An auxiliary head with its `after` and `weight` evaluated and its layers expanded on the shape at its tap
        (a head that is not a mapping, or a tap that does not exist, is the validator's to report)."""
        if not isinstance(head, Map):
            return head
        out = Map(mark=head.mark)
        for key, value in head.items():
            if key in ("after", "weight"):
                value = self.expansion.outside_layers(value, ("aux", name, key), head.value_mark(key))
            out.set(key, value, head.value_mark(key), head.key_mark(key))
        if isinstance(out.get("layers"), Seq):
            shape = self.taps.get(out["after"]) if isinstance(out.get("after"), str) else None
            listed, _ = self.expansion.entries(out["layers"], ("aux", name, "layers"), out.value_mark("layers"), shape)
            self.heads[name] = listed.layers if listed else None
            if listed:
                out.set("layers", listed.tree, out.value_mark("layers"), out.key_mark("layers"))
        return out


def _with(node: Map, key: str, value: Any) -> Map:
    """A copy of `node` with `key` set to `value` (at the same marks)."""
    out = Map(mark=node.mark)
    for k, v in node.items():
        out.set(k, value if k == key else v, node.value_mark(k), node.key_mark(k))
    return out
