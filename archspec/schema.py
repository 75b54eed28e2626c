"""The validated spec, and the walk that validates a resolved YAML tree into it.

Every layer entry is validated by its own kind's Pydantic model (found in the registry by the
entry's single key); `defaults` are merged in first, macros expand, `repeat` copies. Problems are
collected over the whole file and reported together, each at its YAML line.
"""
from __future__ import annotations

import difflib
import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError

from .errors import Problem, SpecError
from .layers import REGISTRY, Layer, Layers, Macro, Sequential, Shape, Size
from .loader import Map, Mark, Seq, marked, problem

StageName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_]*$")]
MAX_REPEAT = 1000


class Input(BaseModel):
    """Shape of one input example."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    channels: Size = Field(description="Input channels (1 for Fashion-MNIST, 3 for RGB).")
    height: Size = Field(description="Input height in pixels.")
    width: Size = Field(description="Input width in pixels.")

    @property
    def shape(self) -> Shape:
        return (self.channels, self.height, self.width)


class Aux(BaseModel):
    """An auxiliary classifier: extra layers tapped from inside the network that run only while training
    (GoogLeNet's two side heads). The built network returns `(main, *aux)` under `autograd.record()`."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    after: Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_]*(\.[0-9]+)?$")] = Field(
        description="Where the head taps the network: after a stage (`b4`) or after one of its layers (`b4.0`, "
                    "counted as in `archspec summary --depth 1`).")
    weight: float = Field(0.3, ge=0, description="Weight of this head's loss in the training loss (0.3 in the "
                                                "paper); the main output's weight is 1.")
    layers: Layers = Field(min_length=1, description="The head's layers, ending in the classifier.")

    @property
    def tap(self) -> tuple[str, int | None]:
        """(stage, index of the layer after which to tap, or None for the stage's output)."""
        stage, _, index = self.after.partition(".")
        return stage, int(index) if index else None


class Spec(BaseModel):
    """A validated network: named stages of layers, every macro expanded and every default applied."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")] = Field(
        description="Name of the network.")
    description: str = Field("", description="One line about the network: what it is and where it comes from.")
    input: Input = Field(description="Shape of one input example: {channels, height, width}.")
    init: Literal["xavier", "msra", "normal", "uniform"] = Field(
        "xavier", description="Weight initialiser (`mxnet.init`); biases start at zero. D2L uses Xavier.")
    stages: dict[StageName, Layers] = Field(
        min_length=1, description="Named stages in order; each is a list of layers. Stage names become the "
                                  "names of the network's child blocks (`net.b3`).")
    aux: dict[StageName, Aux] = Field({}, description="Auxiliary heads by name, run only while training.")

    def layers(self):
        """(stage name, layers) pairs, in order."""
        return self.stages.items()


# Top-level keys that the validator consumes itself instead of storing on `Spec`.
SPEC_KEYS = set(Spec.model_fields) | {"defaults", "base", "args", "blocks", "width", "depth", "width_divisor"}
MAX_BLOCK_DEPTH = 16


def hint(word: str, choices) -> str:
    """`; did you mean 'kernel'?` for a near miss, else the empty string."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def mark_of(node: Any, loc: tuple, key: bool = False) -> tuple[Mark, tuple, tuple]:
    """Follow `loc` into a marked tree. Returns the mark of the deepest node reached, the part of
    `loc` that exists in the data, and the part that does not (a missing field, a union member)."""
    mark = getattr(node, "mark", Mark("<unknown>", 1, 1))
    for i, part in enumerate(loc):
        if isinstance(node, Map) and part in node:
            last = i == len(loc) - 1
            mark = node.key_mark(part) if (key and last) else node.value_mark(part)
            node = node[part]
        elif isinstance(node, Seq) and isinstance(part, int) and 0 <= part < len(node):
            mark, node = node.value_mark(part), node[part]
        else:
            return mark, loc[:i], loc[i:]
    return mark, loc, ()


_EXPECTED = {"int_type": "an integer", "int_parsing": "an integer", "float_type": "a number",
             "float_parsing": "a number", "bool_type": "true or false", "string_type": "a string",
             "tuple_type": "a list", "list_type": "a list", "dict_type": "a mapping",
             "model_type": "a mapping", "model_attributes_type": "a mapping", "none_required": "null"}


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def pydantic_problems(err: ValidationError, node: Any, prefix: tuple, fields=None) -> list[Problem]:
    """Turn a Pydantic error into located problems, one per field, with a did-you-mean for typos."""
    grouped: dict[tuple, list[dict]] = {}
    for e in err.errors():
        _, found, rest = mark_of(node, e["loc"])
        path = found + rest[:1] if e["type"] in ("missing", "extra_forbidden") else found
        grouped.setdefault(path, []).append(e)
    # `kernal: 3` makes `kernel` missing too; the typo is the one problem worth reporting.
    extras = [p[-1] for p, errs in grouped.items() if errs[0]["type"] == "extra_forbidden"]
    for path in [p for p, errs in grouped.items() if errs[0]["type"] == "missing"]:
        if difflib.get_close_matches(str(path[-1]), [str(x) for x in extras], n=1, cutoff=0.6):
            del grouped[path]
    problems = []
    for path, errors in grouped.items():
        e = errors[0]
        mark, _, _ = mark_of(node, path, key=e["type"] == "extra_forbidden")
        if e["type"] == "extra_forbidden":
            allowed = sorted(fields or ())
            message = f"unknown field {path[-1]!r}{hint(str(path[-1]), allowed)}"
            if allowed:
                message += f" (fields: {', '.join(allowed)})"
        elif e["type"] == "missing":
            message = f"missing required field {path[-1]!r}"
        else:
            specific = [x for x in errors if x["type"] not in _EXPECTED]
            if specific:
                message = "; ".join(dict.fromkeys(x["msg"].removeprefix("Value error, ") for x in specific))
            else:
                message = "expected " + " or ".join(dict.fromkeys(_EXPECTED[x["type"]] for x in errors))
            message = message[0].lower() + message[1:] + f", got {_short(e['input'])}"
        problems.append(problem(mark, prefix + path, message))
    return problems


def _field_adapter(cls: type[BaseModel], name: str) -> TypeAdapter:
    info = cls.model_fields[name]
    return TypeAdapter(Annotated[info.annotation, info])


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


class _Block(BaseModel):
    """A reusable, parameterised block: `blocks: {name: {args: {...}, layers: [...]}}`."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)
    args: dict[Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")], Any] = Field(
        {}, description="Arguments and their defaults; null means required. Use them as `$name` in layers.")
    layers: list[Any] = Field(min_length=1, description="The block's layers; `$name` is replaced by an argument.")


class _Walk:
    """Validates layer entries recursively, collecting problems instead of stopping at the first."""

    def __init__(self, defaults: dict[str, Map], blocks: dict[str, Map], args: dict, scaling: Scaling):
        self.defaults, self.blocks, self.scaling = defaults, blocks, scaling
        self.scope: dict[str, tuple[Any, Mark]] = args  # `$name` -> (value, where it was written)
        self.active: list[str] = []  # blocks being expanded, to refuse recursion
        self.problems: list[Problem] = []

    def substitute(self, value: Any, path: tuple, mark: Mark) -> Any:
        """Replace every `$name` string in `value` by the argument's value (which keeps its own mark)."""
        if isinstance(value, str) and value.startswith("$"):
            name = value[1:]
            if name not in self.scope:
                known = ", ".join(f"${k}" for k in self.scope) or "none"
                self.problems.append(problem(mark, path, f"unknown argument {value!r}{hint(name, self.scope)} "
                                             f"(arguments here: {known})"))
                return None
            return self.scope[name][0]
        if isinstance(value, Map):
            out = Map(mark=value.mark)
            for k, v in value.items():
                out.set(k, self.substitute(v, path + (k,), value.value_mark(k)), self._origin(v, value.value_mark(k)),
                        value.key_mark(k))
            return out
        if isinstance(value, Seq):
            out = Seq(mark=value.mark)
            for i, v in enumerate(value):
                out.append_marked(self.substitute(v, path + (i,), value.value_mark(i)),
                                  self._origin(v, value.value_mark(i)))
            return out
        return value

    def _origin(self, value: Any, mark: Mark) -> Mark:
        """Where a substituted value was written: at the argument's value, not at the `$name`."""
        if isinstance(value, str) and value.startswith("$") and value[1:] in self.scope:
            return self.scope[value[1:]][1]
        return mark

    def entries(self, seq: Any, path: tuple, mark: Mark) -> tuple[Layer, ...]:
        if not isinstance(seq, Seq):
            self.problems.append(problem(mark, path, f"expected a list of layers, got {_short(seq)}"))
            return ()
        out: list[Layer] = []
        for i, item in enumerate(seq):
            out.extend(self.entry(item, path + (i,), seq.value_mark(i)))
        return tuple(out)

    def entry(self, item: Any, path: tuple, mark: Mark) -> list[Layer]:
        """One list item: `{kind: body}` (plus an optional `repeat: n`), or a bare kind name."""
        if isinstance(item, str):  # a bare kind name: `- flatten`
            kind, item = item, Map(mark=mark)
            item.set(kind, None, mark)
        if not isinstance(item, Map):
            self.problems.append(problem(mark, path, f"expected a layer such as `conv: {{...}}`, got {_short(item)}"))
            return []
        if self.active or self.scope:
            before = len(self.problems)
            item = self.substitute(item, path, mark)
            if len(self.problems) > before:
                return []
        repeat = item.get("repeat", 1)
        kinds = [k for k in item if k != "repeat"]
        if len(kinds) != 1:
            what = "no layer kind" if not kinds else f"several layer kinds ({', '.join(kinds)})"
            self.problems.append(problem(mark, path, f"a layer entry has exactly one kind, found {what}; "
                                         "start a new list item (-) for each layer"))
            return []
        kind = kinds[0]
        if type(repeat) is not int or not 1 <= repeat <= MAX_REPEAT:
            self.problems.append(problem(item.value_mark("repeat"), path + ("repeat",),
                                         f"repeat must be an integer from 1 to {MAX_REPEAT}, got {_short(repeat)}"))
            return []
        if "repeat" in item:
            repeat = min(MAX_REPEAT, math.ceil(repeat * self.scaling.depth))
        if kind in self.blocks:
            layer = self.block(kind, item[kind], path + (kind,), item.key_mark(kind))
            return [] if layer is None else [layer] * repeat
        if kind not in REGISTRY:
            known = sorted(set(REGISTRY) | set(self.blocks))
            self.problems.append(problem(item.key_mark(kind), path + (kind,), f"unknown layer kind {kind!r}"
                                         f"{hint(kind, known)} (kinds: {', '.join(known)})"))
            return []
        layer = self.layer(kind, item[kind], path + (kind,), item.key_mark(kind))
        return [] if layer is None else [layer] * repeat

    def block(self, name: str, body: Any, path: tuple, mark: Mark) -> Layer | None:
        """Expand a use of a reusable block: its layers with `$args` replaced, as one `sequential`."""
        definition = self.blocks[name]
        if name in self.active or len(self.active) >= MAX_BLOCK_DEPTH:
            chain = " -> ".join(self.active + [name])
            self.problems.append(problem(mark, path, f"block {name!r} uses itself ({chain})"))
            return None
        if body is None:
            body = Map(mark=mark)
        if not isinstance(body, Map):
            self.problems.append(problem(mark, path, f"block {name} takes a mapping of arguments, got {_short(body)}"))
            return None
        args: Map = definition.get("args") or Map()
        scope = dict(self.scope)
        for arg, default in args.items():
            if default is not None:  # a default may itself name an outer argument (`$growth_rate`)
                scope[arg] = (self.substitute(default, path, args.value_mark(arg)), args.value_mark(arg))
        before = len(self.problems)
        for arg, value in body.items():
            if arg not in args:
                self.problems.append(problem(body.key_mark(arg), path + (arg,), f"block {name} has no argument "
                                             f"{arg!r}{hint(arg, args)} (arguments: {', '.join(args) or 'none'})"))
            scope[arg] = (value, body.value_mark(arg))
        for arg in args:
            if arg not in scope or (args[arg] is None and arg not in body):
                self.problems.append(problem(mark, path, f"block {name} needs argument {arg!r}"))
        if len(self.problems) > before:
            return None
        outer, self.scope = self.scope, scope
        self.active.append(name)
        try:
            layers = self._children(definition["layers"], 1, path, mark)
        finally:
            self.scope = outer
            self.active.pop()
        if layers is None:
            return None
        if len(layers) == 1:
            return layers[0]
        seq = Sequential(layers=layers, label=name)
        seq._mark, seq._source = mark, path
        return seq

    def layer(self, kind: str, body: Any, path: tuple, mark: Mark) -> Layer | None:
        cls = REGISTRY[kind]
        body = self._with_defaults(kind, cls, body, path, mark)
        if body is None:
            return None
        for field in cls.width_fields:
            if field in body:
                value = body[field]
                scaled = ([self.scaling.channels(v) for v in value] if isinstance(value, list)
                          else self.scaling.channels(value))
                body.set(field, scaled, body.value_mark(field), body.key_mark(field))
        for field, depth in cls.children.items():
            if field in body:
                body[field] = self._children(body[field], depth, path + (field,), body.value_mark(field))
        if any(body.get(f) is None for f in cls.children if f in body):
            return None  # a child failed; its problem is already recorded
        try:
            obj = cls.model_validate(dict(body))
        except ValidationError as err:
            self.problems.extend(pydantic_problems(err, body, path, cls.model_fields))
            return None
        if isinstance(obj, Macro):
            expanded = marked(obj.expand(), mark)
            (inner,) = expanded  # a macro expands into exactly one entry
            return self.layer(inner, expanded[inner], path, mark)
        obj._mark, obj._source = mark, path
        return obj

    def _with_defaults(self, kind: str, cls, body: Any, path: tuple, mark: Mark) -> Map | None:
        if body is None:
            body = Map(mark=mark)
        elif not isinstance(body, Map):
            if cls.shorthand is None:
                self.problems.append(problem(mark, path, f"{kind} takes a mapping of fields, got {_short(body)}"))
                return None
            body = marked({cls.shorthand: body}, mark)
        merged = Map(mark=body.mark)
        for source in (self.defaults.get(kind, Map()), body):
            for key, value in source.items():
                merged.set(key, value, source.value_mark(key), source.key_mark(key))
        return merged

    def _children(self, value: Any, depth: int, path: tuple, mark: Mark):
        if depth == 1:
            before = len(self.problems)
            layers = self.entries(value, path, mark)
            return None if len(self.problems) > before else layers
        if not isinstance(value, Seq):
            self.problems.append(problem(mark, path, f"expected a list of branches, got {_short(value)}"))
            return None
        out = [self._children(v, depth - 1, path + (i,), value.value_mark(i)) for i, v in enumerate(value)]
        return None if any(o is None for o in out) else tuple(out)


def _check_defaults(raw: Any, mark: Mark) -> tuple[dict[str, Map], list[Problem]]:
    """`defaults: {kind: {field: value}}`: every kind and field must exist and every value fit."""
    if raw is None:
        return {}, []
    if not isinstance(raw, Map):
        return {}, [problem(mark, ("defaults",), f"expected a mapping of layer kinds, got {_short(raw)}")]
    problems, out = [], {}
    for kind, fields in raw.items():
        path = ("defaults", kind)
        if kind not in REGISTRY:
            problems.append(problem(raw.key_mark(kind), path, f"unknown layer kind {kind!r}{hint(kind, REGISTRY)}"))
            continue
        if not isinstance(fields, Map):
            problems.append(problem(raw.value_mark(kind), path, f"expected a mapping of fields, got {_short(fields)}"))
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
    return out, problems


def _check_model(model: type[BaseModel], raw: Any, path: tuple, mark: Mark, problems: list) -> BaseModel | None:
    try:
        return model.model_validate(dict(raw) if isinstance(raw, Map) else raw)
    except ValidationError as err:
        problems.extend(pydantic_problems(err, raw, path, model.model_fields))
        return None


def _check_blocks(raw: Any, mark: Mark, problems: list) -> dict[str, Map]:
    if raw is None:
        return {}
    if not isinstance(raw, Map):
        problems.append(problem(mark, ("blocks",), f"expected a mapping of block definitions, got {_short(raw)}"))
        return {}
    blocks = {}
    for name, definition in raw.items():
        path = ("blocks", name)
        if name in REGISTRY or not name.isidentifier():
            why = "is a built-in layer kind" if name in REGISTRY else "is not an identifier"
            problems.append(problem(raw.key_mark(name), path, f"block name {name!r} {why}"))
        elif _check_model(_Block, definition, path, raw.value_mark(name), problems) is not None:
            blocks[name] = definition
    return blocks


def _check_aux(raw: Any, walk: _Walk, stages: dict | None, problems: list) -> Any:
    """`aux: {name: {after: b4.0, weight: 0.3, layers: [...]}}`: the layers are walked like a stage's,
    and the tap point is checked against the stages."""
    if not isinstance(raw, Map):
        return raw  # Pydantic reports the type
    heads = {}
    for name, body in raw.items():
        path = ("aux", name)
        if not isinstance(body, Map):
            problems.append(problem(raw.value_mark(name), path, f"expected a mapping of after, weight and layers, "
                                    f"got {_short(body)}"))
            continue
        fields, layers_ok = Map(mark=body.mark), True
        for key, value in body.items():
            if key == "layers" and isinstance(value, Seq):
                before = len(walk.problems)
                value = walk.entries(value, path + (key,), body.value_mark(key))
                if len(walk.problems) > before:
                    problems += walk.problems[before:]
                    layers_ok = False
                    continue
            fields.set(key, value, body.value_mark(key), body.key_mark(key))
        found: list[Problem] = []
        head = _check_model(Aux, fields, path, raw.value_mark(name), found)
        problems += [p for p in found if layers_ok or p.path[:3] != path + ("layers",)]
        if head is None or not isinstance(stages, dict):
            continue
        stage, index = head.tap
        where = body.value_mark("after")
        if name in stages:
            problems.append(problem(raw.key_mark(name), path, f"auxiliary head {name!r} has the name of a stage"))
        elif stage not in stages:
            problems.append(problem(where, path + ("after",), f"no stage {stage!r} to tap{hint(stage, stages)} "
                                    f"(stages: {', '.join(stages)})"))
        elif index is not None and index >= len(stages[stage]):
            problems.append(problem(where, path + ("after",), f"stage {stage} has {len(stages[stage])} layers "
                                    f"(0 to {len(stages[stage]) - 1}); cannot tap after layer {index}"))
        else:
            heads[name] = head
    return heads


def validate(raw: Map) -> Spec:
    """Validate a resolved spec tree. Raises `SpecError` listing every problem with its place."""
    problems: list[Problem] = []
    for key in raw:
        if key not in SPEC_KEYS:
            problems.append(problem(raw.key_mark(key), (key,), f"unknown top-level field {key!r}"
                                    f"{hint(key, SPEC_KEYS)} (fields: {', '.join(sorted(SPEC_KEYS))})"))
    defaults, bad = _check_defaults(raw.get("defaults"), raw.value_mark("defaults"))
    problems += bad
    scaling = _check_model(Scaling, {k: raw[k] for k in ("width", "depth", "width_divisor") if k in raw}, (),
                           raw.mark, problems) or Scaling()
    args = raw.get("args") or Map()
    if not isinstance(args, Map):
        problems.append(problem(raw.value_mark("args"), ("args",), f"expected a mapping, got {_short(args)}"))
        args = Map()
    walk = _Walk(defaults, _check_blocks(raw.get("blocks"), raw.value_mark("blocks"), problems),
                 {k: (v, args.value_mark(k)) for k, v in args.items()}, scaling)
    stages = raw.get("stages")
    if isinstance(stages, Map):
        stages = {name: walk.entries(layers, ("stages", name), stages.value_mark(name))
                  for name, layers in stages.items()}
        problems += walk.problems
    fields = {k: v for k, v in raw.items() if k in Spec.model_fields}
    if stages is not None:
        fields["stages"] = stages
    if "aux" in raw:
        fields["aux"] = _check_aux(raw["aux"], walk, stages, problems)
    try:
        spec = Spec.model_validate(fields)
    except ValidationError as err:
        # Layer problems were reported by the walk; keep Pydantic's only for the rest.
        problems += [p for p in pydantic_problems(err, raw, (), Spec.model_fields)
                     if not (isinstance(stages, dict) and p.path[:1] == ("stages",) and len(p.path) > 2)]
    if problems:
        raise SpecError(sorted(problems, key=lambda p: (p.file, p.line, p.col)))
    return spec
