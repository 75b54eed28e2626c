"""The JSON Schema of a spec file as a user writes it, generated from the same Pydantic models that
validate it, so that editors (yaml-language-server) complete and check specs while they are typed."""
from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter

from .blocks import argument_type, is_required, library
from .expand import MAX_REPEAT, Scaling
from .located import plain
from .kinds import REGISTRY
from .schema import Spec
from .space import Budget, Choice, FloatRange, IntRange

SCHEMA_URL = "https://json-schema.org/draft/2020-12/schema"
ARGUMENT = {"type": "string", "pattern": r"^\$", "description": "An expression: `$name`, `$in.channels`, "
                                                            "`${in.channels // 2}`."}
WHEN = {"anyOf": [{"type": "boolean"}, ARGUMENT], "description": "The entry exists only when this is true."}


def _kind_schemas(defs: dict) -> dict[str, dict]:
    out = {}
    for kind, cls in sorted(REGISTRY.items()):
        schema = cls.model_json_schema(ref_template="#/$defs/{model}")
        defs.update(schema.pop("$defs", {}))
        schema.pop("title", None)
        schema["description"] = (cls.__doc__ or kind).strip().splitlines()[0]
        for name, prop in schema["properties"].items():  # any value may be a `$argument`
            if name not in cls.children:
                schema["properties"][name] = {"anyOf": [prop, ARGUMENT], "description": prop.get("description", "")}
        body = [schema]
        if cls.shorthand:  # `- dropout: 0.5`
            body.extend(schema["properties"][cls.shorthand]["anyOf"])
        if not schema.get("required"):  # `- flatten:` or `- flatten`
            body.append({"type": "null"})
        out[kind] = body[0] if len(body) == 1 else {"anyOf": body, "description": schema["description"]}
    return out


def spec_schema() -> dict:
    """JSON Schema (draft 2020-12) of a spec file."""
    defs: dict = {}
    kinds = _kind_schemas(defs)
    repeat = {"anyOf": [{"type": "integer", "minimum": 0, "maximum": MAX_REPEAT}, ARGUMENT]}
    kinds.update(_library_schemas())
    entries = [{"type": "object", "properties": {kind: body, "repeat": repeat, "when": WHEN},
                "required": [kind], "additionalProperties": False} for kind, body in kinds.items()]
    defs["LayerEntry"] = {"description": "A layer: a mapping with one kind key (and optional `repeat` and "
                                         "`when`), or a bare kind name. A spec's own blocks are used the same way.",
                          "anyOf": [*entries, {"enum": sorted(kinds)},
                                    {"type": "object", "minProperties": 1, "maxProperties": 3,
                                     "propertyNames": {"not": {"enum": sorted(kinds)}},
                                     "description": "A use of one of the spec's blocks."},
                                    {"type": "string", "not": {"enum": sorted(kinds)}}]}
    spec = Spec.model_json_schema(ref_template="#/$defs/{model}")
    defs.update(spec.pop("$defs", {}))
    props = spec["properties"]
    # A spec that starts from a base may leave out everything the base already has.
    spec["if"], spec["else"] = {"required": ["base"]}, {"required": spec.pop("required", [])}
    props["stages"]["additionalProperties"] = {"type": "array", "items": {"x-layer-entry": True}}
    props["stages"]["propertyNames"] = {"pattern": r"^[A-Za-z][A-Za-z0-9_]*$"}
    props["stages"].pop("patternProperties", None)
    props["base"] = {"type": "string", "description": "Path of a spec to start from (relative to this file); "
                                                      "this file's fields override it, mapping by mapping."}
    props["args"] = {"type": "object", "description": "Spec arguments and their values, used as `$name` anywhere "
                                                      "in the stages: build_model(path, num_classes=100) sets one."}
    props["blocks"] = {"type": "object", "description": "Reusable, parameterised blocks; use one as a layer kind.",
                       "additionalProperties": {
                           "type": "object", "additionalProperties": False, "required": ["layers"], "properties": {
                               "doc": {"type": "string", "description": "One line about the block."},
                               "args": {"type": "object", "description": "Arguments and their defaults (`required`: "
                                                                         "a use must give it); `$name` in the "
                                                                         "layers."},
                               "types": {"type": "object", "description": "Types of arguments, checked at each "
                                                                          "use: size, count, int, number, flag, "
                                                                          "text, activation, [type, ...], "
                                                                          "{one_of: [...]}."},
                               "layers": {"type": "array", "items": {"x-layer-entry": True}, "minItems": 1}}}}
    for name, info in Scaling.model_fields.items():
        props[name] = Scaling.model_json_schema()["properties"][name]
    props["defaults"] = {
        "type": "object", "description": "Field values applied to every layer of a kind unless the layer sets "
                                         "them, e.g. {conv: {activation: relu}}; for a block, argument values.",
        "properties": {kind: {"type": "object", "properties": {f: s for f, s in
                                                               _object(body)["properties"].items()
                                                               if kind not in REGISTRY or f not in REGISTRY[kind].children},
                              "additionalProperties": False} for kind, body in kinds.items()},
        "additionalProperties": {"type": "object", "description": "Argument values of one of the spec's blocks."}}
    props["space"] = _space_schema()
    props["train"] = {"type": "object", "description": "A training recipe: settings of `archspec train` and its "
                                                       "transforms, checked by `archspec validate` (README: Recipes)."}
    return _link({"$schema": SCHEMA_URL, "title": "archspec network spec", **spec, "$defs": dict(sorted(defs.items()))})


def _space_schema() -> dict:
    """`space:` of a design space, from the models that check it (`space.py`)."""
    def model(cls: Any) -> dict:
        schema = cls.model_json_schema()
        schema.pop("title", None)
        for prop in schema["properties"].values():
            prop.pop("title", None)
        return schema

    return {"type": "object", "additionalProperties": False,
            "description": "A design space: distributions over paths of this spec, constraints and a budget "
                           "(archspec sample, archspec search).",
            "properties": {
                "vary": {"type": "object", "description": "A path as --set takes it (or a spec argument) -> "
                                                          "{int: [low, high], step}, {float: [low, high], log} or "
                                                          "{choice: [...]}.",
                         "additionalProperties": {"anyOf": [model(IntRange), model(FloatRange), model(Choice), {
                             "type": "null", "description": "In a space with `base:`: the base's, no longer drawn."}]}},
                "constraints": {"type": "array", "items": {"type": "string"},
                                "description": "Expressions over the sampled values; a network satisfies all."},
                "budget": model(Budget)}}


def _library_schemas() -> dict[str, Any]:
    """A use of each library block: its arguments, typed where the block declares a type."""
    out = {}
    for name, block in library().items():
        args, types = block.get("args") or {}, block.get("types") or {}
        properties = {arg: ({"anyOf": [TypeAdapter(argument_type(plain(types[arg]))).json_schema(), ARGUMENT]}
                            if arg in types else {}) for arg in args}
        schema = {"type": "object", "description": block.get("doc", ""), "properties": properties,
                  "additionalProperties": False}
        required = [arg for arg, default in args.items() if is_required(default)]
        if required:
            schema["required"] = required
        out[name] = schema if required else {"anyOf": [schema, {"type": "null"}], "description": schema["description"]}
    return out


def _link(node: Any) -> Any:
    """Replace the placeholder that `kinds.Layers` puts in the JSON Schema by a reference to LayerEntry."""
    if isinstance(node, dict):
        return {"$ref": "#/$defs/LayerEntry"} if node.get("x-layer-entry") else {k: _link(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_link(v) for v in node]
    return node


def _object(body: dict) -> dict:
    return next(b for b in body["anyOf"] if b.get("type") == "object") if "anyOf" in body else body


def field_reference() -> str:
    """The README's reference of every layer kind and field, from the same Pydantic descriptions."""
    lines = []
    for kind, cls in sorted(REGISTRY.items()):
        doc = " ".join((cls.__doc__ or "").split())
        short = f" A scalar sets `{cls.shorthand}`: `- {kind}: ...`." if cls.shorthand else ""
        lines += [f"#### `{kind}`", "", doc + short, "", "| field | default | description |", "|---|---|---|"]
        properties = cls.model_json_schema()["properties"]
        for name, info in cls.model_fields.items():
            default = "required" if info.is_required() else f"`{_yaml(info.default)}`"
            choices = _enum(properties[name])
            more = f" One of {', '.join(f'`{_yaml(c)}`' for c in choices)}." if choices else ""
            lines.append(f"| `{name}` | {default} | {info.description or ''}{more} |")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _enum(schema: dict) -> list:
    """The allowed values of a field whose JSON Schema is an enum (possibly or null)."""
    if "enum" in schema:
        return schema["enum"]
    return next((s["enum"] for s in schema.get("anyOf", []) if "enum" in s), [])


def _yaml(value: Any) -> str:
    """A default as YAML writes it: `true`, `null`, `5`."""
    if value is None or isinstance(value, bool):
        return {True: "true", False: "false", None: "null"}[value]
    return str(value)
