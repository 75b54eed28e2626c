"""Pydantic over a marked tree: models and values validated from marked YAML (`check_model`, `check_value`), and
Pydantic's validation errors, located: each becomes a `Problem` at the YAML place of the value (or of the
key, for an unknown field), worded as a user reads it, with a did-you-mean for typos."""
from __future__ import annotations

import difflib
from typing import Annotated, Any, Callable, Iterable, Union

from pydantic import BaseModel, TypeAdapter, ValidationError

from .diagnostics import UNKNOWN, FieldPath, Mark, Problem, hint, problem, short
from .expressions import Channels, ChannelsFloat, is_channels, is_expression
from .loader import Map, Seq


def mark_of(node: Any, loc: FieldPath, key: bool = False,
            at: Mark = UNKNOWN) -> tuple[Mark, FieldPath, FieldPath]:
    """Follow `loc` into a marked tree (`at` is the mark of a root that has none: a scalar). Returns the mark of
    the deepest node reached, the part of `loc` that exists in the data, and the part that does not (a missing
    field, a union member)."""
    mark = getattr(node, "mark", at)
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
             "model_type": "a mapping", "model_attributes_type": "a mapping", "none_required": "null",
             "missing_item": "a longer list"}


Fields = Union[Iterable[str], Callable[[FieldPath], Iterable[str]], None]  # the fields there are (at a path)


def pydantic_problems(err: ValidationError, node: Any, prefix: FieldPath, fields: Fields = None,
                      at: Mark = UNKNOWN) -> list[Problem]:
    """Turn a Pydantic error on `node` (found at `prefix`, written at `at` if it is a scalar) into located
    problems, one per field; `fields` names the fields a typo is compared with (a function of the path to the
    mapping, for nested models)."""
    grouped: dict[FieldPath, list[Any]] = {}
    for e in err.errors():
        _, found, rest = mark_of(node, tuple(e["loc"]))
        if e["type"] == "missing" and len(rest) > 1:  # an item missing inside a value (a fixed-length tuple),
            e = {**e, "type": "missing_item"}         # not a field: Pydantic's member name is no user's word
        path = found + rest[:1] if e["type"] in ("missing", "extra_forbidden") else found
        grouped.setdefault(path, []).append(e)
    # `kernal: 3` makes `kernel` missing too; the typo is the one problem worth reporting.
    extras = [p[-1] for p, errs in grouped.items() if errs[0]["type"] == "extra_forbidden"]
    # A list of the wrong length makes its missing items missing too; the length is the one problem.
    lengths = {p for p, errs in grouped.items() if errs[0]["type"] in ("too_short", "too_long")}
    for path in [p for p, errs in grouped.items() if errs[0]["type"] == "missing"]:
        if path[:-1] in lengths or difflib.get_close_matches(str(path[-1]), [str(x) for x in extras], n=1,
                                                             cutoff=0.6):
            del grouped[path]
    def allowed(path: FieldPath) -> list[str]:
        return sorted(fields(path[:-1]) if callable(fields) else fields or ())

    return [problem(mark_of(node, path, errors[0]["type"] == "extra_forbidden", at)[0], prefix + path,
                    _message(path, errors, allowed(path))) for path, errors in grouped.items()]


def _message(path: FieldPath, errors: list[Any], allowed: list[str]) -> str:
    e = errors[0]
    if e["type"] == "extra_forbidden":
        message = f"unknown field {path[-1]!r}{hint(str(path[-1]), allowed)}"
        return message + (f" (fields: {', '.join(allowed)})" if allowed else "")
    if e["type"] == "missing":
        return f"missing required field {path[-1]!r}"
    if any(x["type"] == "missing_item" for x in errors):  # a pair written short: say what it may be
        errors = [_too_short(x) for x in errors if x["type"] != "missing_item"]
    if len(errors) > 1:  # a value of a union (`padding`): each member as what it expects
        errors = [{**x, "type": "missing_item", "expected": x["ctx"]["expected"]} if x["type"] == "literal_error"
                  else x for x in errors]
    specific = [x for x in errors if x["type"] not in _EXPECTED]
    if specific:
        message = "; ".join(dict.fromkeys(x["msg"].removeprefix("Value error, ") for x in specific))
    else:
        message = "expected " + " or ".join(dict.fromkeys(x.get("expected") or _EXPECTED[x["type"]]
                                                          for x in errors))
    return message[0].lower() + message[1:] + f", got {short(e['input'])}"


def _too_short(error: Any) -> Any:
    """A list too short for a fixed-length value, as what was expected (`a list of 2 items`)."""
    if error["type"] != "too_short":
        return error
    return {**error, "type": "missing_item", "expected": f"a list of {error['ctx']['min_length']} items"}


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


def field_adapter(cls: type[BaseModel], name: str) -> TypeAdapter[Any]:
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


def check_model(model: type[BaseModel], raw: Any, path: FieldPath, problems: list[Problem]) -> Any:
    """`model` validated from a marked mapping, or None with its problems recorded."""
    try:
        return model.model_validate(dict(raw) if isinstance(raw, Map) else raw)
    except ValidationError as err:
        problems.extend(pydantic_problems(err, raw, path, model.model_fields))
        return None
