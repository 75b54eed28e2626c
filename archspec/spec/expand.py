"""Expansion: the resolved tree a user wrote in, plain layer entries out.

This pass consumes the spec's directives - `args` and `blocks` (reusable blocks with `$name` arguments),
`defaults`, the `width` / `depth` multipliers - and every entry's `repeat`, and expands macros. What it
returns is a marked tree of the same shape in which every layer entry is `{kind: {field: value}}` with
nothing left to work out; `Map.origin` keeps the field path each entry was written at, so the validator
that follows reports problems where the user wrote them. Problems are collected, not raised: an entry
that fails is `FAILED` in its list, and the others are still expanded (and validated).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any, Final

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError

from .diagnostics import FieldPath, Mark, Problem, hint, problem, short
from .kinds import REGISTRY, Macro, Size, _Kind
from .loader import Map, Seq, marked
from .located import pydantic_problems

MAX_REPEAT = 1000
MAX_BLOCK_DEPTH = 16
#: top-level keys this pass consumes; what is left is validated as a `Spec`
DIRECTIVES = ("args", "blocks", "defaults", "width", "depth", "width_divisor")


class _Failed:
    def __repr__(self) -> str:
        return "FAILED"


#: stands for an entry, or a list of entries, that could not be expanded (its problems are recorded)
FAILED: Final = _Failed()


class Scaling(BaseModel):
    """Whole-spec multipliers, as in scaled model families."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    width: float = Field(1.0, gt=0, le=64, description="Multiplies every convolution's channels (inside "
                                                      "Inception blocks too), rounded to `width_divisor`.")
    depth: float = Field(1.0, gt=0, le=64, description="Multiplies every explicit `repeat`, rounded up.")
    width_divisor: Size = Field(1, description="Scaled channel counts are rounded to a multiple of this "
                                              "(MobileNet uses 8).")

    def channels(self, value: Any) -> Any:
        if self.width == 1 or type(value) is not int:
            return value
        d = self.width_divisor
        return max(d, int(value * self.width / d + 0.5) * d)

    def repeat(self, count: int) -> int:
        return min(MAX_REPEAT, math.ceil(count * self.depth))


ArgumentName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]


class Block(BaseModel):
    """A reusable, parameterised block: `blocks: {name: {args: {...}, layers: [...]}}`."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)
    args: dict[ArgumentName, Any] = Field(
        {}, description="Arguments and their defaults; null means required. Use them as `$name` in layers.")
    layers: list[Any] = Field(min_length=1, description="The block's layers; `$name` is replaced by an argument.")


@dataclass(frozen=True)
class Expanded:
    """The expanded tree (directives consumed) and the problems found on the way."""

    tree: Map
    problems: list[Problem]


class _Skip(Exception):
    """The entry being expanded failed; its problems are recorded."""


Scope = dict[str, tuple[Any, Mark]]  # `$name` -> (value, where it was written)


class _Expansion:
    def __init__(self, defaults: dict[str, Map], blocks: dict[str, Map], scope: Scope, scaling: Scaling):
        self.defaults, self.blocks, self.scope, self.scaling = defaults, blocks, scope, scaling
        self.active: list[str] = []  # blocks being expanded, to refuse recursion
        self.problems: list[Problem] = []

    def report(self, found: list[Problem]) -> None:
        """Record `found`; if there is anything, the entry being expanded is skipped."""
        if found:
            self.problems += found
            raise _Skip

    def entries(self, seq: Any, path: FieldPath, mark: Mark) -> Seq | _Failed:
        """A list of entries, expanded; an entry that failed is `FAILED` in it (every entry is tried)."""
        if not isinstance(seq, Seq):
            self.problems.append(problem(mark, path, f"expected a list of layers, got {short(seq)}"))
            return FAILED
        out = Seq(mark=seq.mark)
        for i, item in enumerate(seq):
            try:
                expanded: list[Map | _Failed] = list(self.entry(item, path + (i,), seq.value_mark(i)))
            except _Skip:
                expanded = [FAILED]
            for entry in expanded:
                out.append_marked(entry, seq.value_mark(i))
        return out

    def entry(self, item: Any, path: FieldPath, mark: Mark) -> list[Map]:
        """One list item, `{kind: body}` (plus an optional `repeat: n`) or a bare kind name, as entries."""
        if isinstance(item, str):  # a bare kind name: `- flatten`
            kind, item = item, Map(mark=mark)
            item.set(kind, None, mark)
        if not isinstance(item, Map):
            self.report([problem(mark, path, f"expected a layer such as `conv: {{...}}`, got {short(item)}")])
        if self.scope:
            item = self.substitute(item, path, mark)
        kinds = [k for k in item if k != "repeat"]
        if len(kinds) != 1:
            what = "no layer kind" if not kinds else f"several layer kinds ({', '.join(kinds)})"
            self.report([problem(mark, path, f"a layer entry has exactly one kind, found {what}; "
                                             "start a new list item (-) for each layer")])
        kind = kinds[0]
        repeat = item.get("repeat", 1)
        if type(repeat) is not int or not 1 <= repeat <= MAX_REPEAT:
            self.report([problem(item.value_mark("repeat"), path + ("repeat",),
                                 f"repeat must be an integer from 1 to {MAX_REPEAT}, got {short(repeat)}")])
        if "repeat" in item:
            repeat = self.scaling.repeat(repeat)
        where, key_mark = path + (kind,), item.key_mark(kind)
        if kind in self.blocks:
            return [self.block(kind, item[kind], where, key_mark)] * repeat
        if kind not in REGISTRY:
            known = sorted(set(REGISTRY) | set(self.blocks))
            self.report([problem(key_mark, where, f"unknown layer kind {kind!r}{hint(kind, known)} "
                                                  f"(kinds: {', '.join(known)})")])
        return [self.layer(kind, item[kind], where, key_mark)] * repeat

    def substitute(self, value: Any, path: FieldPath, mark: Mark) -> Any:
        """`value` with every `$name` string replaced by the argument's value (which keeps its own mark)."""
        found: list[Problem] = []

        def walk(value: Any, path: FieldPath, mark: Mark) -> Any:
            if isinstance(value, str) and value.startswith("$"):
                if value[1:] in self.scope:
                    return self.scope[value[1:]][0]
                known = ", ".join(f"${k}" for k in self.scope) or "none"
                found.append(problem(mark, path, f"unknown argument {value!r}{hint(value[1:], self.scope)} "
                                                 f"(arguments here: {known})"))
            if isinstance(value, Map):
                out = Map(mark=value.mark)
                for k, v in value.items():
                    out.set(k, walk(v, path + (k,), value.value_mark(k)), self.origin(v, value.value_mark(k)),
                            value.key_mark(k))
                return out
            if isinstance(value, Seq):
                return Seq([walk(v, path + (i,), value.value_mark(i)) for i, v in enumerate(value)], value.mark,
                           [self.origin(v, value.value_mark(i)) for i, v in enumerate(value)])
            return value

        out = walk(value, path, mark)
        self.report(found)
        return out

    def origin(self, value: Any, mark: Mark) -> Mark:
        """Where a substituted value was written: at the argument's value, not at the `$name`."""
        if isinstance(value, str) and value.startswith("$") and value[1:] in self.scope:
            return self.scope[value[1:]][1]
        return mark

    def block(self, name: str, body: Any, path: FieldPath, mark: Mark) -> Map:
        """A use of a reusable block: its layers with `$args` replaced, as one `sequential` entry."""
        if name in self.active or len(self.active) >= MAX_BLOCK_DEPTH:
            self.report([problem(mark, path, f"block {name!r} uses itself ({' -> '.join(self.active + [name])})")])
        if body is None:
            body = Map(mark=mark)
        if not isinstance(body, Map):
            self.report([problem(mark, path, f"block {name} takes a mapping of arguments, got {short(body)}")])
        definition = self.blocks[name]
        outer, self.scope = self.scope, self.bind(name, definition.get("args") or Map(), body, path, mark)
        self.active.append(name)
        try:
            layers = self.entries(definition["layers"], path, mark)
        finally:
            self.scope = outer
            self.active.pop()
        assert isinstance(layers, Seq)  # the definition was checked to have a list of layers
        if len(layers) == 1 and layers[0] is not FAILED:
            return layers[0]
        body = Map(mark=mark)
        body.set("layers", layers, mark)
        body.set("label", name, mark)
        return _entry("sequential", body, path, mark)

    def bind(self, name: str, args: Map, body: Map, path: FieldPath, mark: Mark) -> Scope:
        """The scope inside a use of block `name`: the outer arguments, the block's defaults, then `body`."""
        scope = dict(self.scope)
        for arg, default in args.items():
            if default is not None:  # a default may itself name an outer argument (`$growth_rate`)
                scope[arg] = (self.substitute(default, path, args.value_mark(arg)), args.value_mark(arg))
        found = [problem(body.key_mark(arg), path + (arg,), f"block {name} has no argument {arg!r}"
                                                            f"{hint(arg, args)} (arguments: {', '.join(args) or 'none'})")
                 for arg in body if arg not in args]
        scope.update({arg: (value, body.value_mark(arg)) for arg, value in body.items()})
        found += [problem(mark, path, f"block {name} needs argument {arg!r}") for arg in args
                  if arg not in scope or (args[arg] is None and arg not in body)]
        self.report(found)
        return scope

    def layer(self, kind: str, body: Any, path: FieldPath, mark: Mark) -> Map:
        """An entry of a registered kind: defaults merged in, width scaled, child entries expanded."""
        cls = REGISTRY[kind]
        body = self.with_defaults(kind, cls, body, path, mark)
        for field in cls.width_fields:
            if field in body:
                value = body[field]
                scaled = ([self.scaling.channels(v) for v in value] if isinstance(value, list)
                          else self.scaling.channels(value))
                body.set(field, scaled, body.value_mark(field), body.key_mark(field))
        for field, depth in cls.children.items():
            if field in body:
                body[field] = self.children(body[field], depth, path + (field,), body.value_mark(field))
        if issubclass(cls, Macro):
            return self.macro(cls, body, path, mark)
        return _entry(kind, body, path, mark)

    def macro(self, cls: type[Macro], body: Map, path: FieldPath, mark: Mark) -> Map:
        """Validate a macro's fields, then expand the entry it stands for (at the macro's place)."""
        try:
            expanded = marked(cls.model_validate(dict(body)).expand(), mark)
        except ValidationError as err:
            self.report(pydantic_problems(err, body, path, cls.model_fields))
        (inner,) = expanded  # a macro expands into exactly one entry
        return self.layer(inner, expanded[inner], path, mark)

    def with_defaults(self, kind: str, cls: type[_Kind], body: Any, path: FieldPath, mark: Mark) -> Map:
        if body is None:
            body = Map(mark=mark)
        elif not isinstance(body, Map):
            if cls.shorthand is None:
                self.report([problem(mark, path, f"{kind} takes a mapping of fields, got {short(body)}")])
            body = marked({cls.shorthand: body}, mark)
        merged = Map(mark=body.mark)
        for source in (self.defaults.get(kind, Map()), body):
            for key, value in source.items():
                merged.set(key, value, source.value_mark(key), source.key_mark(key))
        return merged

    def children(self, value: Any, depth: int, path: FieldPath, mark: Mark) -> Seq | _Failed:
        """A field holding entries: a list of them (depth 1) or a list of such lists (depth 2)."""
        if depth == 1:
            return self.entries(value, path, mark)
        if not isinstance(value, Seq):
            self.problems.append(problem(mark, path, f"expected a list of branches, got {short(value)}"))
            return FAILED
        return Seq([self.children(v, depth - 1, path + (i,), value.value_mark(i)) for i, v in enumerate(value)],
                   value.mark, value.item_marks)


def _entry(kind: str, body: Map, path: FieldPath, mark: Mark) -> Map:
    entry = Map(mark=mark)
    entry.set(kind, body, mark)
    entry.origin = path
    return entry


def _field_adapter(cls: type[BaseModel], name: str) -> TypeAdapter[Any]:
    info = cls.model_fields[name]
    return TypeAdapter(Annotated[info.annotation, info])  # type: ignore[arg-type]


def _defaults(raw: Any, mark: Mark, problems: list[Problem]) -> dict[str, Map]:
    """`defaults: {kind: {field: value}}`: every kind and field must exist and every value fit."""
    if raw is None:
        return {}
    if not isinstance(raw, Map):
        problems.append(problem(mark, ("defaults",), f"expected a mapping of layer kinds, got {short(raw)}"))
        return {}
    out = {}
    for kind, fields in raw.items():
        path = ("defaults", kind)
        if kind not in REGISTRY:
            problems.append(problem(raw.key_mark(kind), path, f"unknown layer kind {kind!r}{hint(kind, REGISTRY)}"))
            continue
        if not isinstance(fields, Map):
            problems.append(problem(raw.value_mark(kind), path, f"expected a mapping of fields, got {short(fields)}"))
            continue
        cls = REGISTRY[kind]
        for name, value in fields.items():
            if name not in cls.model_fields or name in cls.children:
                problems.append(problem(fields.key_mark(name), path + (name,), f"{kind} has no field {name!r}"
                                                                               f"{hint(name, cls.model_fields)}"))
                continue
            try:
                _field_adapter(cls, name).validate_python(value)
            except ValidationError as err:
                problems.extend(pydantic_problems(err, value, path + (name,)))
        out[kind] = fields
    return out


def check_model(model: type[BaseModel], raw: Any, path: FieldPath, problems: list[Problem]) -> Any:
    """`model` validated from a marked mapping, or None with its problems recorded."""
    try:
        return model.model_validate(dict(raw) if isinstance(raw, Map) else raw)
    except ValidationError as err:
        problems.extend(pydantic_problems(err, raw, path, model.model_fields))
        return None


def _blocks(raw: Any, mark: Mark, problems: list[Problem]) -> dict[str, Map]:
    if raw is None:
        return {}
    if not isinstance(raw, Map):
        problems.append(problem(mark, ("blocks",), f"expected a mapping of block definitions, got {short(raw)}"))
        return {}
    blocks = {}
    for name, definition in raw.items():
        path = ("blocks", name)
        if name in REGISTRY or not name.isidentifier():
            why = "is a built-in layer kind" if name in REGISTRY else "is not an identifier"
            problems.append(problem(raw.key_mark(name), path, f"block name {name!r} {why}"))
        elif check_model(Block, definition, path, problems) is not None:
            blocks[name] = definition
    return blocks


def expand(raw: Map) -> Expanded:
    """Expand a resolved spec tree: directives consumed, every stage and auxiliary head's layers expanded."""
    problems: list[Problem] = []
    defaults = _defaults(raw.get("defaults"), raw.value_mark("defaults"), problems)
    scaling = check_model(Scaling, {k: raw[k] for k in ("width", "depth", "width_divisor") if k in raw}, (),
                          problems) or Scaling()
    args = raw.get("args") or Map()
    if not isinstance(args, Map):
        problems.append(problem(raw.value_mark("args"), ("args",), f"expected a mapping, got {short(args)}"))
        args = Map()
    expansion = _Expansion(defaults, _blocks(raw.get("blocks"), raw.value_mark("blocks"), problems),
                           {k: (v, args.value_mark(k)) for k, v in args.items()}, scaling)
    tree = Map(mark=raw.mark)
    for key, value in raw.items():
        if key in DIRECTIVES:
            continue
        if key == "stages" and isinstance(value, Map):
            value = _each(value, lambda name, layers, mark: expansion.entries(layers, ("stages", name), mark))
        elif key == "aux" and isinstance(value, Map):
            value = _each(value, lambda name, head, mark: _aux(expansion, name, head))
        tree.set(key, value, raw.value_mark(key), raw.key_mark(key))
    return Expanded(tree, problems + expansion.problems)


def _aux(expansion: _Expansion, name: str, head: Any) -> Any:
    """An auxiliary head with its layers expanded (a head that is not a mapping is the validator's to report)."""
    if not isinstance(head, Map) or not isinstance(head.get("layers"), Seq):
        return head
    out = Map(mark=head.mark)
    for key, value in head.items():
        if key == "layers":
            value = expansion.entries(value, ("aux", name, "layers"), head.value_mark(key))
        out.set(key, value, head.value_mark(key), head.key_mark(key))
    return out


def _each(node: Map, expand_one: Any) -> Map:
    out = Map(mark=node.mark)
    for key, value in node.items():
        out.set(key, expand_one(key, value, node.value_mark(key)), node.value_mark(key), node.key_mark(key))
    return out
