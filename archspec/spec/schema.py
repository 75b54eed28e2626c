"""The validated spec, and the last step of the one pass that makes it.

Expansion (`expand.py`) consumes the directives and makes every layer entry plain and validated as its kind,
with its shape; here the auxiliary heads' taps are checked against the stages, the whole becomes a frozen
`Spec`, and the spec's analysis (`analysis.summarize`, from the shapes expansion measured) goes with it.
Problems of the whole pass, shape problems included, are reported together, in line order.
"""
from __future__ import annotations

import difflib
import re
from typing import Annotated, Any, Literal, Optional

from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, PrivateAttr, StringConstraints, ValidationError,
                      model_validator)

from .diagnostics import FieldPath, Problem, SpecError, hint, problem, short
from .expand import DIRECTIVES, MAX_LAYERS, Memo, expand
from .kinds import Layer, Layers, Shape, Size
from .gluon_names import not_a_block_attribute
from .loader import Map
from .located import check_model, pydantic_problems

StageName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_]*$"),
                      AfterValidator(not_a_block_attribute)]
_TAP = re.compile(r"[A-Za-z][A-Za-z0-9_]*(\.[0-9]+)?")  # where an auxiliary head taps: `b4` or `b4.0`


def parse_tap(after: str) -> tuple[str, int | None]:
    """An auxiliary head's `after` (`b4` or `b4.0`, matching `_TAP`): (stage, index of the layer after which to tap,
    or None for the stage's output)."""
    stage, _, index = after.partition(".")
    return stage, int(index) if index else None


class Input(BaseModel):
    """Shape of one input example."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    channels: Size = Field(description="Input channels (1 for Fashion-MNIST, 3 for RGB).")
    height: Size = Field(description="Input height in pixels.")
    width: Size = Field(description="Input width in pixels.")
    mean: tuple[float, ...] | None = Field(None, description="Per-channel mean subtracted from the input (pixels "
                                                              "scaled to 0..1) before the first stage, as the "
                                                              "network's weights expect: ImageNet's "
                                                              "[0.485, 0.456, 0.406]. With `std`.")
    std: tuple[float, ...] | None = Field(None, description="Per-channel standard deviation the input is divided "
                                                            "by after `mean`: ImageNet's [0.229, 0.224, 0.225].")

    @property
    def shape(self) -> Shape:
        return (self.channels, self.height, self.width)

    @model_validator(mode="after")
    def _one_value_a_channel(self) -> "Input":
        if (self.mean is None) != (self.std is None):
            raise ValueError("mean and std go together")
        for name, values in (("mean", self.mean), ("std", self.std)):
            if values is not None and len(values) != self.channels:
                raise ValueError(f"{name} needs one value for each of the {self.channels} channel(s), got "
                                 f"{len(values)}")
        if self.std is not None and min(self.std) <= 0:
            raise ValueError("std must be positive")
        return self


class Aux(BaseModel):
    """An auxiliary classifier: extra layers tapped from inside the network that run only while training
    (GoogLeNet's two side heads). The built network returns `(main, *aux)` under `autograd.record()`."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    after: Annotated[str, StringConstraints(pattern=f"^{_TAP.pattern}$")] = Field(
        description="Where the head taps the network: after a stage (`b4`) or after one of its layers (`b4.0`, "
                    "counted as in `archspec summary --depth 1`).")
    weight: float = Field(0.3, ge=0, description="Weight of this head's loss in the training loss (0.3 in the "
                                                "paper); the main output's weight is 1.")
    layers: Layers = Field(min_length=1, description="The head's layers, ending in the classifier.")

    @property
    def tap(self) -> tuple[str, int | None]:
        """(stage, index of the layer after which to tap, or None for the stage's output)."""
        return parse_tap(self.after)


class Analysis:
    """The analysis of a spec on its own input (an `analysis.Summary`), kept with the spec once made: made at load
    from the shapes expansion measured, and read by every later `summarize(spec)`. A function of the spec's value,
    so it never tells two specs apart."""

    def __init__(self) -> None:
        self.summary: Any = None
        self.stages: Any = None  # the stages it was made for
        self.notices: tuple[Any, ...] = ()  # warnings of the expansion (a deprecated spelling), before the layers'

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Analysis)

    __hash__ = None  # type: ignore[assignment]


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
    _analysis: Analysis = PrivateAttr(default_factory=lambda: Analysis())

    def layers(self) -> Any:
        """(stage name, layers) pairs, in order."""
        return self.stages.items()


#: every top-level key a spec file may have
SPEC_KEYS = (*Spec.model_fields, *DIRECTIVES, "base")


class _Heads:
    """Validates the auxiliary heads of one spec against its stages; holds the problems found."""

    def __init__(self, layers: dict[str, Optional[tuple[Layer, ...]]]) -> None:
        self.layers = layers  # each head's layers as expansion validated them (None: they failed)
        self.problems: list[Problem] = []

    def aux(self, raw: Any, stages: dict[str, tuple[Layer, ...] | None] | None) -> Any:
        """`aux: {name: {after: b4.0, weight: 0.3, layers: [...]}}`, each tap checked against the stages."""
        if not isinstance(raw, Map):
            return raw  # Pydantic reports the type
        heads = {}
        for name, body in raw.items():
            path: FieldPath = ("aux", name)
            if not isinstance(body, Map):
                self.problems.append(problem(raw.value_mark(name), path, "expected a mapping of after, weight and "
                                                                         f"layers, got {short(body)}"))
                continue
            fields = Map(mark=body.mark)
            for key, value in body.items():
                if key == "layers" and name in self.layers:
                    value = self.layers[name]
                    if value is None:
                        continue  # its problems are recorded; do not also call it missing
                fields.set(key, value, body.value_mark(key), body.key_mark(key))
            found: list[Problem] = []
            head = check_model(Aux, fields, path, found)
            self.problems += [p for p in found if "layers" in fields or p.path[:3] != path + ("layers",)]
            after = fields.get("after")
            # The tap is checked even when the head's layers failed: at a tap that does not exist they cannot work
            tap_ok = stages is not None and isinstance(after, str) and _TAP.fullmatch(after) is not None \
                and self.tap_ok(name, after, raw, body, stages)
            if head is not None and tap_ok:
                heads[name] = head
        return heads

    def tap_ok(self, name: str, after: str, raw: Map, body: Map, stages: dict[str, tuple[Layer, ...] | None]) -> bool:
        stage, index = parse_tap(after)
        where, path = body.value_mark("after"), ("aux", name, "after")
        if name in stages:
            self.problems.append(problem(raw.key_mark(name), path[:2], f"auxiliary head {name!r} has the name of "
                                                                       "a stage"))
        elif stage not in stages:
            self.problems.append(problem(where, path, f"no stage {stage!r} to tap{hint(stage, stages)} "
                                                      f"(stages: {', '.join(stages)})"))
        elif index is not None and stages[stage] is not None and index >= len(stages[stage] or ()):
            count = len(stages[stage] or ())
            self.problems.append(problem(where, path, f"stage {stage} has {count} layers (0 to {count - 1}); "
                                                      f"cannot tap after layer {index}"))
        else:
            return True
        return False


def _fields_at(path: FieldPath) -> Any:
    """The fields of the part of a `Spec` at `path` (for did-you-mean hints)."""
    if not path:
        return SPEC_KEYS
    nested: dict[str, type[BaseModel]] = {"input": Input, "aux": Aux}
    return nested[path[0]].model_fields if path[0] in nested else ()


def validate(raw: Map, max_layers: int = MAX_LAYERS, memo: Memo | None = None) -> Spec:
    """Expand and validate a resolved spec tree (refusing one that expands to more than `max_layers` layers), and
    analyse it. Raises `SpecError` listing every problem with its place. `memo`: what the networks of a design
    space share."""
    return _expand_and_validate(raw, max_layers, memo)[1]


def expanded(raw: Map, max_layers: int = MAX_LAYERS) -> Map:
    """The expanded tree of a valid spec (what `archspec resolve --expand` prints); `SpecError` if invalid."""
    return _expand_and_validate(raw, max_layers)[0]


def _expand_and_validate(raw: Map, max_layers: int, memo: Memo | None = None) -> tuple[Map, Spec]:
    from .analysis import summarize

    made = expand(raw, max_layers, memo)
    if not made.complete:
        raise SpecError(made.problems)
    tree = made.tree
    problems = [p for p in made.problems if p.severity == "error"]
    notices = [p for p in made.problems if p.severity == "warning"]
    args: Any = raw.get("args") if isinstance(raw.get("args"), Map) else {}
    for key in tree:
        if key not in Spec.model_fields:
            argument = difflib.get_close_matches(key, list(args), n=1, cutoff=0.6)
            near = hint(key, SPEC_KEYS) or (f"; did you mean the argument args.{argument[0]}?" if argument else "")
            problems.append(problem(tree.key_mark(key), (key,), f"unknown top-level field {key!r}{near} "
                                                               f"(fields: {', '.join(sorted(SPEC_KEYS))})"))
    fields = {k: v for k, v in tree.items() if k in Spec.model_fields}
    if made.stages is not None:
        fields["stages"] = {name: layers or () for name, layers in made.stages.items()}  # a failed one is reported
    heads = _Heads(made.heads)
    if "aux" in tree:
        fields["aux"] = heads.aux(tree["aux"], made.stages)
    problems += heads.problems
    try:
        spec = Spec.model_validate(fields)
    except ValidationError as err:
        problems += pydantic_problems(err, tree, (), _fields_at)
    if problems:  # an entry repeated, or inside a block used twice, reports its problem once
        raise SpecError(sorted(dict.fromkeys(problems), key=lambda p: (p.file, p.line, p.col)))
    spec._analysis.notices = tuple(dict.fromkeys(notices))
    summarize(spec, limits=None)  # every layer was measured as it was made: this lays out the rows
    return tree, spec
