"""Reusable blocks: the library shipped with archspec (`library.yaml`), a spec's own `blocks:` definitions, and
the types a block's arguments may declare. Expansion (`expand.py`) uses them; nothing here expands anything."""
from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import Annotated, Any, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr, StringConstraints, TypeAdapter

from .diagnostics import FieldPath, Mark, Problem, hint, problem, short
from .kinds import REGISTRY, Activation, Flag, NonNegative, Size
from .loader import Map, parse_yaml
from .located import check_model, plain

#: the types a block argument may declare (`types: {c2: [size, size]}`), as Pydantic checks them
ARGUMENT_TYPES: dict[str, Any] = {"size": Size, "count": NonNegative, "int": StrictInt,
                                  "number": Union[StrictInt, StrictFloat], "flag": Flag, "text": StrictStr,
                                  "activation": Optional[Activation],
                                  "window": Union[Size, Annotated[tuple[Size, Size], Field(min_length=2, max_length=2)]]}


ArgumentName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]

#: the default of an argument a use must give (`args: {channels: required}`); `null` meant it before, but a
#: `base:` merge reads `null` as a deletion, so a derived spec restating the block deleted the argument
REQUIRED = "required"

#: the file name the library's marks carry
LIBRARY_FILE = "archspec/spec/library.yaml"


def is_required(default: Any) -> bool:
    """Whether an argument's default marks it required (`required`, or the deprecated `null`)."""
    return default is None or default == REQUIRED


class Block(BaseModel):
    """A reusable, parameterised block: `blocks: {name: {args: {...}, layers: [...]}}`."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)
    doc: str = Field("", description="One line about the block, shown by `archspec blocks`.")
    args: dict[ArgumentName, Any] = Field(
        {}, description="Arguments and their defaults; `required` marks one a use must give. Use them as "
                           "`$name` in layers.")
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
    near = hint(spec, ARGUMENT_TYPES) if isinstance(spec, str) else ""
    raise ValueError(f"unknown type {short(spec)}{near} (types: {', '.join(ARGUMENT_TYPES)}, [type, ...] or "
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
    tree = parse_yaml(text, LIBRARY_FILE)
    assert isinstance(tree, Map) and isinstance(tree.get("blocks"), Map)
    return tree["blocks"]


def check_blocks(raw: Any, mark: Mark, problems: list[Problem], library: bool = False) -> dict[str, Optional[Map]]:
    """Block definitions: each a valid `Block`, named as no layer kind is, with known argument types. A definition
    with a problem (added to `problems`) is None: the block stays known by its name, so that its uses are skipped
    rather than reported again as unknown kinds. A kind registered under the name of a library block replaces it
    (the user asked for it by name)."""
    path: FieldPath = ("blocks",)
    if raw is None:
        return {}
    if not isinstance(raw, Map):
        problems.append(problem(mark, path, f"expected a mapping of block definitions, got {short(raw)}"))
        return {}
    blocks: dict[str, Optional[Map]] = {}
    for name, definition in raw.items():
        where = path + (name,)
        if library and name in REGISTRY:
            continue
        if name in REGISTRY or not name.isidentifier():
            why = "is a built-in layer kind" if name in REGISTRY else "is not an identifier"
            problems.append(problem(raw.key_mark(name), where, f"block name {name!r} {why}"))
            if name not in REGISTRY:  # a use of the kind is the kind's
                blocks[name] = None
            continue
        block = check_model(Block, definition, where, problems)
        if block is None:
            blocks[name] = None
            continue
        args = definition.get("args")
        problems += [problem(args.value_mark(arg), where + ("args", arg), f"`{arg}: null` as a required argument "
                             f"is deprecated (in a `base:` merge null deletes): write `{arg}: required`",
                             severity="warning") for arg, default in block.args.items() if default is None]
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
        blocks[name] = None if bad else definition
    return blocks


@lru_cache(maxsize=4)
def library_blocks(kinds: tuple[str, ...]) -> dict[str, Optional[Map]]:
    """The library's blocks, checked once for the kinds registered (a kind of a block's name replaces it)."""
    problems: list[Problem] = []
    blocks = check_blocks(library(), library().mark, problems, library=True)
    assert not problems, problems  # the library is tested; a problem here is a bug of archspec's
    return blocks
