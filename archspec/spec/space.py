"""Design spaces: a spec whose `space:` section gives distributions over its paths, sampled without MXNet.

    space:
      vary:                                     # a path as --set takes it (or a spec argument) -> a distribution
        d1: {int: [1, 8]}                       # an integer from 1 to 8
        w1: {int: [16, 256], step: 16}          # 16, 32, ..., 256
        b1: {choice: [1, 0.5, 0.25]}            # one of these values
        width: {float: [0.5, 2.0], log: true}   # a number, log-uniform
        stages.body.0: {choice: [{resnext_block: {channels: 64}}, {residual: {channels: 64}}], name: block}
        stages.body.0.residual.channels: {int: [32, 128], step: 32, name: rw}   # inside that choice: drawn only
      constraints:                              # when `residual` is chosen; a network satisfies all that apply
        - w2 >= w1
        - rw >= w1
      budget: {max_params: 2_000_000, max_macs: 500_000_000, max_memory: 16_000_000}

A network of the space is the spec with one value drawn for every path (of a variable inside a choice, only when
the value chosen has its path; a constraint applies only where every name it reads was drawn): valid, satisfying
every constraint, and within the budget, all checked statically (constraints first, as they cost nothing; then the
spec is expanded, validated and analysed). Values are drawn by a `Draw`: at random here (`RandomDraw`), by an Optuna
trial in `archspec.train.search`, so both walk the same space.
"""
from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Annotated, Any, Iterator, Optional, Protocol, Sequence, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StringConstraints
from pydantic import model_validator

from .analysis import Summary, summarize
from .diagnostics import FieldPath, InputError, Mark, Problem, SpecError, fail, hint, problem, short
from .blocks import library
from .expand import MAX_LAYERS, Memo
from .expressions import Evaluation, ExpressionError, Node, is_expression, parse, source
from .kinds import REGISTRY
from .located import check_model
from .loader import Map, Seq, copied
from .resolve import assign, load_resolved, locate, parse_overrides
from .schema import SPEC_KEYS, Spec, validate

MAX_VALUES = 1_000_000  # integers in one range: a larger one is a typo, or needs a step or log
GIVE_UP_AFTER = 1_000  # attempts without one network in the space: it has none worth looking for
ATTEMPTS_PER_NETWORK = 100  # and at most this many attempts per network asked for
MAX_BRANCHES = 10_000  # values of the choices around one variable, each checked for its path: nesting is bounded
MAX_WORK = 20_000_000  # layers analysed in all by one sampling (about 10 minutes): an untrusted space never hogs

Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
Scalar = Union[None, bool, int, float, str]
Branch = tuple[tuple[str, int], ...]  # the choices taken on the way to a tree: (choice's key, value's index), ...


class _Distribution(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    name: Optional[Name] = Field(None, description="The value's name in constraints and reports (default: the "
                                                   "path; a spec argument's is its name).")


class IntRange(_Distribution):
    """`{int: [low, high], step: 1, log: false}`: an integer from low to high, both included."""

    bounds: tuple[StrictInt, StrictInt] = Field(alias="int", description="[low, high], both included.")
    step: StrictInt = Field(1, ge=1, description="Only low, low + step, ..., high.")
    log: StrictBool = Field(False, description="Log-uniform (step 1 and low >= 1 only).")

    @model_validator(mode="after")
    def _sensible(self) -> IntRange:
        low, high = self.bounds
        if low > high:
            raise ValueError(f"empty range: low {low} is above high {high}")
        if (high - low) % self.step:
            raise ValueError(f"step {self.step} does not divide the range {low}..{high} (high - low = {high - low})")
        if self.log and (self.step != 1 or low < 1):
            raise ValueError("log takes step 1 and a low of at least 1")
        if (high - low) // self.step + 1 > MAX_VALUES and not self.log:
            raise ValueError(f"the range holds {(high - low) // self.step + 1:,} values; at most {MAX_VALUES:,} "
                             "(use a step, or log: true)")
        return self


class FloatRange(_Distribution):
    """`{float: [low, high], log: false}`: a number from low to high."""

    bounds: tuple[Union[StrictInt, StrictFloat], Union[StrictInt, StrictFloat]] = Field(
        alias="float", description="[low, high].")
    log: StrictBool = Field(False, description="Log-uniform (low > 0).")

    @model_validator(mode="after")
    def _sensible(self) -> FloatRange:
        low, high = self.bounds
        if not low < high:
            raise ValueError(f"empty range: low {low} is not below high {high}")
        if self.log and low <= 0:
            raise ValueError("log needs a low above 0")
        return self


class Choice(_Distribution):
    """`{choice: [a, b, ...]}`: one of the values (numbers, text, lists, or whole layer entries: blocks)."""

    choice: list[Any] = Field(min_length=1, description="The values to choose from.")

    @model_validator(mode="after")
    def _distinct(self) -> Choice:
        labels = [repr(_data(v)) for v in self.choice]
        twice = next((v for v, label in zip(self.choice, labels) if labels.count(label) > 1), None)
        if twice is not None:
            raise ValueError(f"{short(_data(twice))} is in the choice twice")
        scalars = [v for v in self.choice if isinstance(v, (bool, int, float))]
        equal = next(((a, b) for i, a in enumerate(scalars) for b in scalars[i + 1:] if a == b), None)
        if equal is not None:  # Python, YAML's readers and Optuna take true for 1 (and 1.0 for 1)
            raise ValueError(f"{short(equal[0])} and {short(equal[1])} are the same value to Optuna and to "
                             "Python; a choice holds each value once (write one of them, or quote it as text)")
        return self


Distribution = Union[IntRange, FloatRange, Choice]
DISTRIBUTIONS: dict[str, type[BaseModel]] = {"int": IntRange, "float": FloatRange, "choice": Choice}


class Budget(BaseModel):
    """`budget:` the most a network of the space may cost, as `archspec summary` counts it."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    max_params: Optional[StrictInt] = Field(None, ge=1, description="Parameters (and batch-norm state).")
    max_macs: Optional[StrictInt] = Field(None, ge=1, description="Multiply-accumulates per example.")
    max_memory: Optional[StrictInt] = Field(None, ge=1, description="Bytes of activations per example.")

    def exceeded(self, summary: Summary) -> Optional[str]:
        """The first limit `summary` is over (`max_params`), or None."""
        for limit, used in (("max_params", summary.weights), ("max_macs", summary.macs),
                            ("max_memory", summary.memory)):
            allowed = getattr(self, limit)
            if allowed is not None and used > allowed:
                return limit
        return None


class Draw(Protocol):
    """Where a space's values come from: at random (`RandomDraw`), or an Optuna trial's suggestions."""

    def integer(self, name: str, low: int, high: int, step: int, log: bool) -> int: ...

    def real(self, name: str, low: float, high: float, log: bool) -> float: ...

    def choice(self, name: str, labels: Sequence[Scalar]) -> int:
        """The index of the chosen label."""
        ...


class RandomDraw:
    """Independent uniform draws (log-uniform where asked), from `random.Random(seed)`."""

    def __init__(self, seed: Optional[int] = None):
        self.rng = random.Random(seed)

    def integer(self, name: str, low: int, high: int, step: int, log: bool) -> int:
        if log:
            value = round(math.exp(self.rng.uniform(math.log(low - 0.5), math.log(high + 0.5))))
            return min(high, max(low, value))
        return low + step * self.rng.randrange((high - low) // step + 1)

    def real(self, name: str, low: float, high: float, log: bool) -> float:
        if log:
            return math.exp(self.rng.uniform(math.log(low), math.log(high)))
        return self.rng.uniform(low, high)

    def choice(self, name: str, labels: Sequence[Scalar]) -> int:
        return self.rng.randrange(len(labels))


@dataclass(frozen=True)
class Variable:
    """One path of the spec and the distribution of its values."""

    key: str  # the path, as --set takes it
    name: str  # in constraints and reports
    distribution: Distribution
    mark: Mark  # where the key is written
    options: tuple[Any, ...] = ()  # a choice's values, marked (a chosen block reports problems at its line)
    parent: Optional[str] = None  # the key of the choice it lives inside: drawn only when that choice is drawn
    branches: frozenset[int] = frozenset()  # ... and one of these of its values is chosen
    within: tuple[tuple[str, frozenset[int]], ...] = ()  # every choice around it, outermost first, and the values

    @property
    def labels(self) -> list[Scalar]:
        """A choice's values as Optuna and reports show them: the value, or for a block its kind and index."""
        return [v if isinstance(v, (type(None), bool, int, float, str)) else f"{i}:{_label(v)}"
                for i, v in enumerate(self.options)]

    def draw(self, draw: Draw) -> Any:
        d = self.distribution
        if isinstance(d, IntRange):
            return draw.integer(self.key, d.bounds[0], d.bounds[1], d.step, d.log)
        if isinstance(d, FloatRange):
            return draw.real(self.key, float(d.bounds[0]), float(d.bounds[1]), d.log)
        return self.options[draw.choice(self.key, self.labels)]

    def index(self, value: Any) -> Optional[int]:
        """Which of a choice's values `value` is: the same object, else equal and of the same type (true is not
        1), else None."""
        found = next((i for i, o in enumerate(self.options) if o is value), None)
        if found is None:
            found = next((i for i, o in enumerate(self.options) if type(o) is type(value) and o == value), None)
        return found

    def shown(self, value: Any) -> Scalar:
        """The value as a report shows it."""
        if isinstance(self.distribution, Choice):
            i = self.index(value)
            return "-" if i is None else self.labels[i]
        return round(value, 6) if isinstance(value, float) else value


@dataclass(frozen=True)
class Constraint:
    text: str
    node: Node
    mark: Mark
    path: FieldPath
    reads: frozenset[str] = frozenset()  # the names it reads: it applies only where all of them are drawn

    def holds(self, names: dict[str, Any]) -> bool:
        try:
            value = Evaluation(names, lambda channels: channels)(self.node)
        except ExpressionError as e:
            raise fail(self.mark, self.path, f"{self.text}: {e}") from None
        if not isinstance(value, bool):
            raise fail(self.mark, self.path, f"a constraint is true or false; {self.text} gives {short(value)}")
        return value


@dataclass(frozen=True)
class SampledNetwork:
    """A network of the space: the values drawn, the spec they make, and its static analysis."""

    values: dict[str, Any]  # key -> value
    tree: Map  # the resolved spec with the values set (what `write` writes)
    spec: Spec
    summary: Summary

    @property
    def params(self) -> int:
        """Parameters and state (`Summary.weights`): what a budget's `max_params` limits."""
        return self.summary.weights


@dataclass
class Rejections:
    """Why drawn values were not a network of the space: one count per constraint, budget limit, or `invalid`."""

    counts: Counter[str] = field(default_factory=Counter)
    example: dict[str, Problem] = field(default_factory=dict)  # the first problem of an invalid network

    last_cheap: bool = True  # the last rejection came before the network was analysed (a constraint)

    def add(self, reason: str, example: Optional[Problem] = None) -> None:
        self.last_cheap = reason.startswith("constraint ")
        self.counts[reason] += 1
        if example is not None:
            self.example.setdefault(reason, example)

    def lines(self) -> list[str]:
        return [f"{count:>6,}  {reason}" + (f" (first: {self.example[reason]})" if reason in self.example else "")
                for reason, count in self.counts.most_common()]


@dataclass(frozen=True)
class Space:
    """A spec with distributions, constraints and a budget (`load_space`)."""

    tree: Map  # the resolved spec, `space:` taken out
    variables: tuple[Variable, ...]
    constraints: tuple[Constraint, ...]
    budget: Budget
    marks: dict[str, Mark]  # where each budget limit is written
    max_layers: int = MAX_LAYERS
    memo: Optional[Memo] = None  # what the networks share (none when the values reach blocks, defaults or width)
    size: int = 1  # layers of the spec at its own values (what a network that turns out invalid may have cost)

    def draw(self, draw: Draw) -> dict[str, Any]:
        """A value for every variable whose choices (if it lives inside any) chose its branch, and for no other:
        as Optuna's define-by-run asks a trial only for the parameters of the branch it took. The variables come
        choice first, so a choice is drawn before the variables inside it."""
        values: dict[str, Any] = {}
        by_key = {v.key: v for v in self.variables}
        for v in self.variables:
            if v.parent is None or (v.parent in values and by_key[v.parent].index(values[v.parent]) in v.branches):
                values[v.key] = v.draw(draw)
        return values

    def names(self, values: dict[str, Any]) -> dict[str, Any]:
        """The values drawn by the names constraints use (a chosen block by its label, `0:resnext_block`)."""
        return {v.name: v.shown(values[v.key]) if isinstance(v.distribution, Choice) else values[v.key]
                for v in self.variables if v.key in values}

    def broken(self, values: dict[str, Any]) -> Optional[Constraint]:
        """The first constraint `values` break, or None. A constraint that reads a variable not drawn (of a
        branch not chosen) does not apply: it says nothing about a network without that variable."""
        names = self.names(values)
        return next((c for c in self.constraints if c.reads <= names.keys() and not c.holds(names)), None)

    def network(self, values: dict[str, Any]) -> SampledNetwork:
        """The network `values` make (whatever its cost); `SpecError` if they make no valid spec. Only the
        mappings and lists on the way to a value are copied: the rest of the tree is the space's own, which lets
        the memo recognise the entries no value reaches."""
        tree: Map = copied(self.tree)
        fresh: set[int] = set()
        for v in self.variables:  # a choice before the variables inside it, which go into the value chosen
            if v.key in values:
                _placed(tree, v, values[v.key], fresh)
        spec = validate(tree, self.max_layers, self.memo)
        return SampledNetwork(values, tree, spec, summarize(spec, limits=None))

    def consider(self, values: dict[str, Any], rejections: Rejections) -> Optional[SampledNetwork]:
        """The network of `values` if it is in the space; else None, and the reason counted in `rejections`."""
        constraint = self.broken(values)
        if constraint is not None:
            rejections.add(f"constraint {constraint.text}")
            return None
        try:
            network = self.network(values)
        except SpecError as e:
            drawn = self.described(values)
            rejections.add("invalid", replace(e.problems[0], message=f"{e.problems[0].message} (drawn: {drawn})"))
            return None
        limit = self.budget.exceeded(network.summary)
        if limit is not None:
            rejections.add(limit)
            return None
        return network

    def mark_of(self, reason: str) -> tuple[Mark, FieldPath]:
        """Where the thing behind a rejection reason is written."""
        for c in self.constraints:
            if reason == f"constraint {c.text}":
                return c.mark, c.path
        if reason in self.marks:
            return self.marks[reason], ("space", "budget", reason)
        return self.tree.mark, ("space",)

    def shown(self, values: dict[str, Any]) -> dict[str, Scalar]:
        """The values drawn as reports show them, by name (a variable of a branch not chosen has none)."""
        return {v.name: v.shown(values[v.key]) for v in self.variables if v.key in values}

    def described(self, values: dict[str, Any]) -> str:
        """The values in one line: `name=value, ...`."""
        return ", ".join(f"{k}={v}" for k, v in self.shown(values).items())


@dataclass(frozen=True)
class Sampled:
    networks: list[SampledNetwork]
    attempts: int
    rejections: Rejections


@dataclass
class Tally:
    """What a sampling has done so far: attempts, why each rejected one was, and layers analysed (its work)."""

    attempts: int = 0
    rejections: Rejections = field(default_factory=Rejections)
    work: int = 0


def sample(space: Space, n: int, seed: Optional[int] = None, draw: Optional[Draw] = None,
           max_work: int = MAX_WORK) -> Sampled:
    """`n` networks of the space, drawn independently (all kept: `networks` streams them instead)."""
    tally = Tally()
    found = list(networks(space, n, seed, draw, tally, max_work))
    return Sampled(found, tally.attempts, tally.rejections)


def networks(space: Space, n: int, seed: Optional[int] = None, draw: Optional[Draw] = None,
             tally: Optional[Tally] = None, max_work: int = MAX_WORK) -> Iterator[SampledNetwork]:
    """`n` networks of the space, drawn independently, one at a time (a caller keeps only what it needs). Gives up,
    with a `SpecError` at the constraint or limit that rejected most, after `GIVE_UP_AFTER` attempts without a
    network or `ATTEMPTS_PER_NETWORK` per network; and with an `InputError` once `max_work` layers have been analysed
    in all, so that a space of huge networks never runs for hours."""
    draw = draw or RandomDraw(seed)
    tally = tally if tally is not None else Tally()
    found = 0
    while found < n:
        if (tally.attempts >= GIVE_UP_AFTER and not found) or tally.attempts >= ATTEMPTS_PER_NETWORK * max(n, 10):
            raise _exhausted(space, tally.attempts, found, n, tally.rejections)
        if tally.work >= max_work:
            raise InputError(f"sampling stopped after analysing {tally.work:,} layers in {tally.attempts:,} attempts "
                             f"({found:,} of the {n:,} networks asked for found): ask for fewer networks (-n), or "
                             "make the space's networks smaller (or their limit, --max-layers)")
        tally.attempts += 1
        network = space.consider(space.draw(draw), tally.rejections)
        tally.work += len(network.summary.rows) if network is not None else 1 if tally.rejections.last_cheap \
            else space.size  # an invalid network may have been expanded as far as the space's own
        if network is not None:
            found += 1
            yield network


def _exhausted(space: Space, attempts: int, found: int, n: int, rejections: Rejections) -> SpecError:
    reason, _ = rejections.counts.most_common(1)[0]
    why = "; ".join(f"{reason}: {count:,}" for reason, count in rejections.counts.most_common())
    message = (f"{found:,} of the {n:,} networks asked for in {attempts:,} attempts; the space may hold none "
               f"(rejected: {why})")
    if reason == "invalid":
        first = rejections.example["invalid"]
        return SpecError([problem(Mark(first.file, first.line, first.col), first.path, first.message
                                  + f" (so {message})")])
    mark, path = space.mark_of(reason)
    return fail(mark, path, f"{reason} rejects every network: {message}")


def load_space(path: Any, overrides: Any = None, max_layers: int = MAX_LAYERS, base_outside: bool = False) -> Space:
    """A spec file with a `space:` section (its own, or from its `base:`), checked: every path goes somewhere,
    every distribution is sound, every constraint parses and names only sampled values, and the spec itself
    (at its own values) is valid. Raises `SpecError` with the place of every problem. Does not import MXNet."""
    raw = load_resolved(path, overrides, base_outside)
    if "space" not in raw:
        raise fail(raw.mark, ("space",), "no `space:` section: a design space is a spec with `space: {vary: ...}` "
                                         "(or a file with `base:` and `space:`)")
    node, mark = raw["space"], raw.value_mark("space")
    tree = Map(mark=raw.mark)
    for key, value in raw.items():
        if key != "space":
            tree.set(key, value, raw.value_mark(key), raw.key_mark(key))
    problems: list[Problem] = []
    if not isinstance(node, Map):
        raise fail(mark, ("space",), f"expected a mapping of vary, constraints and budget, got {short(node)}")
    for key in node:
        if key not in ("vary", "constraints", "budget"):
            problems.append(problem(node.key_mark(key), ("space", key), f"unknown field {key!r}"
                                    f"{hint(key, ('vary', 'constraints', 'budget'))} (fields: vary, constraints, "
                                    "budget)"))
    variables = _variables(tree, node.get("vary"), node.value_mark("vary") if "vary" in node else mark, problems)
    problems += _overridden(tree, overrides, variables)
    vary: Map = node["vary"] if isinstance(node.get("vary"), Map) else Map()
    named = {body["name"] if isinstance(body, Map) and isinstance(body.get("name"), str) else key
             for key, body in vary.items()}  # a variable refused above is not also an unknown name here
    constraints = _constraints(node.get("constraints"), node.value_mark("constraints"), named, problems)
    constraints = _drawn_together(constraints, variables, problems)
    budget, limits = Budget(), Map()
    if isinstance(node.get("budget"), Map):
        limits = node["budget"]
        budget = check_model(Budget, limits, ("space", "budget"), problems) or Budget()
    elif node.get("budget") is not None:  # `budget: 0` is no budget of a kind the user meant: refused, not ignored
        problems.append(problem(node.value_mark("budget"), ("space", "budget"), "expected a mapping of max_params, "
                                f"max_macs and max_memory, got {short(node['budget'])}"))
    size = 1
    try:
        size = max(1, len(summarize(validate(tree, max_layers), limits=None).rows))
    except SpecError as e:
        problems += e.problems
    if problems:
        raise SpecError(sorted(dict.fromkeys(problems), key=lambda p: (p.file, p.line, p.col)))
    shared = not any(v.key.split(".")[0] in ("blocks", "defaults", "width", "depth", "width_divisor")
                     for v in variables)  # values that reach every entry: nothing to share
    return Space(tree, tuple(variables), tuple(constraints), budget, {k: limits.key_mark(k) for k in limits},
                 max_layers, Memo(tree.get("stages")) if shared else None, size)


def _variables(tree: Map, vary: Any, mark: Mark, problems: list[Problem]) -> list[Variable]:
    """The variables of `vary`, a choice before the variables that live inside it (whose key starts with the
    choice's: `stages.b3.0.inception.c1` inside `stages.b3.0`), each checked where it goes."""
    if not isinstance(vary, Map) or not vary:
        problems.append(problem(mark, ("space", "vary"), "expected a mapping of paths to distributions, such as "
                                                         "`vary: {w1: {int: [16, 256], step: 16}}`"))
        return []
    written: dict[str, Distribution] = {}
    for key, body in vary.items():
        path: FieldPath = ("space", "vary", key)
        kinds = [k for k in DISTRIBUTIONS if isinstance(body, Map) and k in body]
        if len(kinds) != 1:
            problems.append(problem(vary.value_mark(key), path, "a distribution is {int: [low, high]}, "
                                    f"{{float: [low, high]}} or {{choice: [...]}}, got {short(_data(body))}"))
            continue
        distribution = check_model(DISTRIBUTIONS[kinds[0]], body, path, problems)
        if distribution is not None:
            written[key] = distribution
    parents = _parents(written)
    variables: list[Variable] = []
    contexts: dict[str, list[tuple[Branch, Map]]] = {}  # key -> the trees it goes into, one per branch
    placed: list[tuple[Branch, tuple[Any, ...], str]] = []  # where each variable's value goes -> its key
    for key in sorted(written, key=lambda k: _depth(k, parents)):  # stable: the file's order among equals
        distribution, at, path = written[key], vary.key_mark(key), ("space", "vary", key)
        parent = parents[key]
        if parent is not None and parent not in contexts:
            continue  # its choice was refused, and said why
        outer = next((v for v in variables if v.key == parent), None)
        if outer is not None and len(contexts[outer.key]) * len(outer.options) > MAX_BRANCHES:
            problems.append(problem(at, path, f"inside {len(contexts[outer.key]) * len(outer.options):,} values of "
                                              f"nested choices; at most {MAX_BRANCHES:,}"))
            continue
        trees = [((), tree)] if outer is None else [  # the choice's every value, in every tree the choice goes into
            ((*branch, (outer.key, i)), _placed(copied(inside), outer, option, set()))
            for branch, inside in contexts[outer.key] for i, option in enumerate(outer.options)]
        wrong = [(branch, there, _path_problem(there, key, at, path)) for branch, there in trees]
        reached = [(branch, there) for branch, there, found in wrong if found is None]
        if not reached:
            if outer is not None:
                problems.append(_in_no_branch(key, outer, at, path))
            else:  # outside any choice: the one tree's problem
                problems += [found for _, _, found in wrong if found is not None]
            continue
        name = distribution.name or key
        if name in (v.name for v in variables):
            problems.append(problem(at, path, f"two variables are named {name!r}"))
            continue
        clash = _clash(key, [(branch, _place(there, key, at)) for branch, there in reached], placed, parents, written)
        if clash is not None:
            problems.append(problem(at, path, clash))
            continue
        placed += [(branch, _place(there, key, at), key) for branch, there in reached]
        contexts[key] = reached
        options = tuple(vary[key]["choice"]) if isinstance(distribution, Choice) else ()
        branches = frozenset(branch[-1][1] for branch, _ in reached) if outer is not None else frozenset()
        within = () if outer is None else (*outer.within, (outer.key, branches))
        variables.append(Variable(key, name, distribution, at, options, parent, branches, within))
    return variables


def _parents(written: dict[str, Distribution]) -> dict[str, Optional[str]]:
    """Each variable's choice: the longest key of a choice that its own key starts with (`stages.b3.0` for
    `stages.b3.0.inception.c1`), or None."""
    choices = [k for k, d in written.items() if isinstance(d, Choice)]
    return {key: max((c for c in choices if key.startswith(c + ".")), key=len, default=None) for key in written}


def _depth(key: str, parents: dict[str, Optional[str]]) -> int:
    """How many choices a variable lives inside."""
    parent = parents[key]
    return 0 if parent is None else 1 + _depth(parent, parents)


def _in_no_branch(key: str, choice: Variable, at: Mark, path: FieldPath) -> Problem:
    return problem(at, path, f"{key} lives inside the choice {choice.key} (its key starts with the choice's), but "
                             f"none of its values has that path (values: {', '.join(map(str, choice.labels))}); "
                             "a variable inside a choice is a path into one of its values")


def _clash(key: str, places: list[tuple[Branch, tuple[Any, ...]]], placed: list[tuple[Branch, tuple[Any, ...], str]],
           parents: dict[str, Optional[str]], written: dict[str, Distribution]) -> Optional[str]:
    """Why a variable's value would overwrite another's, or None: the same path, a path inside another variable's
    (not a choice it lives inside) or around it, in a network where both are drawn."""
    ancestors = set()
    parent = parents[key]
    while parent is not None:
        ancestors.add(parent)
        parent = parents[parent]
    for branch, place in places:
        for other_branch, other_place, other in placed:
            if other in ancestors or not _together(branch, other_branch):
                continue
            if other_place[:len(place)] == place or place[:len(other_place)] == other_place:
                how = "the same path as" if other_place == place else (
                    "a path inside" if len(place) > len(other_place) else "a path that holds")
                inside = (f"a variable inside the choice {other} starts with its key, {other}.PATH" if other in parents
                          and isinstance(written[other], Choice) else "vary the outer path's choices instead")
                return f"{how} the variable {other}; each path may vary once ({inside})"
    return None


def _together(a: Branch, b: Branch) -> bool:
    """Whether two trees can be one network's: they took the same value of every choice both took."""
    taken = dict(a)
    return all(taken.get(choice, index) == index for choice, index in b)


def _placed(tree: Map, v: Variable, value: Any, fresh: set[int]) -> Map:
    """`tree` with `value` at `v`'s path (in place): only the containers on the way are copied, each once (`fresh`
    holds the copies' ids), so the rest stays the space's own, which the memo recognises."""
    _, part, where = locate(tree, v.key, v.mark, "space.vary")
    node: Any = tree
    for step in where:
        child = node[step]
        if id(child) not in fresh:
            child = copied(child)
            fresh.add(id(child))
            node[step] = child
        node = child
    assign(node, part, value, v.mark)
    return tree


def _drawn_together(constraints: list[Constraint], variables: Sequence[Variable],
                    problems: list[Problem]) -> list[Constraint]:
    """The constraints that can apply: one that reads variables of different values of one choice (never drawn
    together) would never apply, which is a mistake, refused at its line."""
    by_name = {v.name: v for v in variables}
    out = []
    for c in constraints:
        needed: dict[str, frozenset[int]] = {}
        for name in sorted(c.reads & by_name.keys()):
            for choice, branches in by_name[name].within:
                needed[choice] = needed.get(choice, branches) & branches
        never = next((choice for choice, branches in needed.items() if not branches), None)
        if never is not None:
            apart = [n for n in sorted(c.reads & by_name.keys()) if never in dict(by_name[n].within)]
            problems.append(problem(c.mark, c.path, f"{c.text}: reads {', '.join(apart)}, which live in different "
                                                    f"values of the choice {never} and are never drawn together, so "
                                                    "it would never apply (write one constraint per value)"))
            continue
        out.append(c)
    return out


def _overridden(tree: Map, overrides: Any, variables: Sequence[Variable]) -> list[Problem]:
    """An override of a value the space varies, which every network would replace: refused, not silently lost."""
    found = []
    places = {v.key: _place(tree, v.key, v.mark) for v in variables if v.parent is None}  # a choice's place holds
    # the places of the variables inside it
    for key, _, at in parse_overrides(overrides):
        try:
            place = _place(tree, key, at)
        except SpecError:
            continue  # an override of `space:` itself, or one load_resolved has reported
        varied = next((k for k, p in places.items() if place[:len(p)] == p), None)
        if varied is not None:
            found.append(problem(at, tuple(key.split(".")), f"the space varies {varied} (space.vary), so every network would "
                                         "replace this value; change the variable's distribution instead"))
    return found


def _place(tree: Map, key: str, mark: Mark) -> tuple[Any, ...]:
    """Where a path's value goes: the field path of its holder, then its last part."""
    _, part, where = locate(tree, key, mark, "space.vary")
    return (*where, part)


def _path_problem(tree: Map, key: str, mark: Mark, path: FieldPath) -> Optional[Problem]:
    """Why `key` names nothing in the spec, or None: every part must exist, except a field a layer or block may
    have that the entry leaves at its default."""
    if any(p.startswith("-") and p[1:].isdigit() for p in key.split(".")):
        return problem(mark, path, "a variable's path counts a list's items from 0 (a negative "
                                   "index is not taken here)")
    try:
        node, part, where = locate(tree, key, mark, "space.vary")
    except SpecError as e:
        return problem(mark, path, e.message)
    if not isinstance(node, Map) or part in node:
        return None
    blocks = {**library(), **(tree["blocks"] if isinstance(tree.get("blocks"), Map) else {})}
    allowed: Any = ()  # in `args`, `input` and the like, the field must be there
    if where == ():
        allowed = SPEC_KEYS
    elif isinstance(where[-1], int):  # a layer entry's own keys
        allowed = ("repeat", "when")
    elif where[0] in ("stages", "aux") and where[-1] in REGISTRY:
        allowed = REGISTRY[where[-1]].model_fields
    elif where[0] in ("stages", "aux") and isinstance(blocks.get(where[-1]), Map):
        allowed = blocks[where[-1]].get("args") or ()
    if part in allowed:
        return None
    here = ".".join(map(str, where)) or "the spec's top level"
    return problem(mark, path, f"space.vary {key}: no field {part!r} at {here}{hint(str(part), list(allowed) + list(node))}"
                               f" (has: {', '.join(sorted(set(map(str, node)) | set(allowed))) or 'nothing'})")


def _constraints(raw: Any, mark: Mark, names: set[str], problems: list[Problem]) -> list[Constraint]:
    if raw is None:
        return []
    if not isinstance(raw, Seq):
        problems.append(problem(mark, ("space", "constraints"), f"expected a list of expressions, got {short(raw)}"))
        return []
    out = []
    for i, item in enumerate(raw):
        path, at = ("space", "constraints", i), raw.value_mark(i)
        if not isinstance(item, str):
            problems.append(problem(at, path, f"a constraint is an expression such as `w2 >= w1`, got {short(item)}"))
            continue
        text = source(item) if is_expression(item) else item
        try:
            node = parse(text)
        except ExpressionError as e:
            problems.append(problem(at, path, f"{text}: {e}"))
            continue
        unknown = sorted(n for n in _names_in(node) if n not in names)
        if unknown:
            problems.append(problem(at, path, f"{text}: unknown name {unknown[0]!r}{hint(unknown[0], names)} "
                                              f"(names: the sampled values, {', '.join(sorted(names)) or 'none'})"))
            continue
        if not (node[0] in ("compare", "and", "or", "not", "name") or node[0] == "num" and isinstance(node[1], bool)):
            problems.append(problem(at, path, f"a constraint is true or false (a comparison such as `w2 >= w1`, "
                                              f"joined by and, or, not); {text} is a value"))
            continue
        out.append(Constraint(text, node, at, path, frozenset(_names_in(node))))
    return out


def _names_in(node: Node) -> set[str]:
    if node[0] == "name":
        return {node[1]}
    found: set[str] = set()
    for part in node[1:]:
        if isinstance(part, tuple) and part:
            for inner in (part if isinstance(part[0], tuple) else (part,)):
                found |= _names_in(inner)
    return found


def _label(value: Any) -> str:
    """A block among a choice's values, by its kind: `{resnext_block: {...}}` -> `resnext_block`."""
    if isinstance(value, dict) and len([k for k in value if k not in ("repeat", "when")]) == 1:
        return next(str(k) for k in value if k not in ("repeat", "when"))
    return short(_data(value))


def _data(node: Any) -> Any:
    """A marked tree as plain Python data."""
    if isinstance(node, dict):
        return {k: _data(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_data(v) for v in node]
    return node


def spec_text(network: SampledNetwork, name: str, comment: str = "") -> str:
    """A network of the space as a spec file of its own (what `archspec train` takes): the resolved spec with the
    values set, named `name`, `comment` on top."""
    data = _data(network.tree)
    data.pop("base", None)
    data["name"] = name
    head = "".join(f"# {line}\n" for line in comment.splitlines())
    return head + yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=110)
