"""Expressions in spec values: `$in.channels`, `$c2[0]`, `${max(1, in.channels // reduction)}`.

A string value that starts with `$` is an expression: `$` then the expression, or `${` expression `}`
(`$$` starts a plain string that begins with `$`). The grammar is small and parsed here, never by Python:
integers, decimals, 'strings', true / false, names (block and spec arguments, and `in`, the shape the
entry receives: `in.channels`, `in.height`, `in.width`), indexing (`c2[0]`), `+ - * / // %` (`/` divides
exactly, giving a decimal: a drop rate `${0.1 * 5 / 17}`), comparisons (`== != < <= > >=`), `and or not`,
parentheses, a list of numbers with a number (`kernel // 2` halves each of a pair: `[1, 7] // 2` is `[0, 3]`) and
five functions: `min`, `max`, `round` (to the nearest
integer, as Python rounds), `make_divisible(x, divisor)` (MobileNet's rounding) and `unscaled(x)` (a channel
count the width leaves as written: torchvision's MobileNetV2 keeps its last 1280 channels below width 1).
Expressions are bounded in length, nesting and size.

Width scaling composes with expressions: `in.channels` is a channel count already scaled by the spec's
`width`, so a plain number that meets it in `+ - min max` or a comparison is taken as a channel count at
width 1 and scaled first; a result that comes from `in.channels` is not scaled again. `make_divisible(x, d)` of
a number written at width 1 scales `x` by the width before rounding it, once: its result is not scaled again.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, Mapping, Union

MAX_LENGTH = 500
MAX_DEPTH = 32
MAX_MAGNITUDE = 1 << 62
FUNCTIONS = ("min", "max", "round", "make_divisible", "unscaled")
_TOKEN = re.compile(r"\s*(?:(\d+\.\d*|\.\d+|\d+)|([A-Za-z_][A-Za-z0-9_]*)|('[^'\n]*'|\"[^\"\n]*\")"
                    r"|(//|==|!=|<=|>=|[-+*/%<>()\[\],.]))")
_KEYWORDS = {"and", "or", "not", "true", "false"}

Node = tuple[Any, ...]


class ExpressionError(ValueError):
    """An expression that cannot be parsed or evaluated; the message says why, in the user's terms."""


class Channels(int):
    """A channel count that already carries the spec's width scaling (it comes from `in.channels`)."""


class ChannelsFloat(float):
    """A channel count on its way to an integer (`in.channels * 1.5`), already scaled like `Channels`."""


def is_channels(value: Any) -> bool:
    return isinstance(value, (Channels, ChannelsFloat))


@dataclass(frozen=True)
class Incoming:
    """`in`: the shape an entry receives (channels, height, width; or a vector's length as channels)."""

    shape: tuple[int, ...]

    def attribute(self, name: str) -> int:
        if name == "channels":
            return Channels(self.shape[0])
        if name in ("height", "width") and len(self.shape) == 3:
            return self.shape[1] if name == "height" else self.shape[2]
        if name in ("height", "width"):
            raise ExpressionError(f"in.{name}: the input here is {'x'.join(map(str, self.shape))}, not an image")
        raise ExpressionError(f"`in` has channels, height and width, not {name!r}")

    def __str__(self) -> str:
        return "x".join(map(str, self.shape))


def is_expression(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("$") and not value.startswith("$$")


def literal(value: str) -> str:
    """A plain string value: `$$x` is the text `$x`."""
    return value[1:] if value.startswith("$$") else value


def source(value: str) -> str:
    """The expression inside `$expr` or `${expr}`."""
    return value[2:-1] if value.startswith("${") and value.endswith("}") else value[1:]


@lru_cache(maxsize=4096)
def parse(text: str) -> Node:
    """The syntax tree of an expression; `ExpressionError` for anything outside the grammar."""
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"expression is longer than {MAX_LENGTH} characters")
    return _Parser(text).parse()


class _Parser:
    """A recursive-descent parser of one expression. Holds the text, its tokens, the index of the next token and
    how deeply the parse is nested (bounded, so a hostile expression cannot exhaust the stack)."""

    def __init__(self, text: str):
        self.text, self.tokens, self.i, self.depth = text, self._tokenize(text), 0, 0

    @staticmethod
    def _tokenize(text: str) -> list[tuple[str, str]]:
        tokens, position = [], 0
        while text[position:].strip():
            match = _TOKEN.match(text, position)
            if not match:
                raise ExpressionError(f"unexpected {text[position:].strip()[:10]!r}")
            number, name, string, op = match.groups()
            kind = "num" if number else "name" if name else "str" if string else "op"
            tokens.append((kind, number or name or string or op))
            position = match.end()
        return tokens

    def peek(self) -> str | None:
        return self.tokens[self.i][1] if self.i < len(self.tokens) else None

    def take(self, expected: str | None = None) -> tuple[str, str]:
        if self.i >= len(self.tokens):
            raise ExpressionError("unexpected end" + (f": expected {expected!r}" if expected else ""))
        token = self.tokens[self.i]
        if expected is not None and token[1] != expected:
            raise ExpressionError(f"expected {expected!r}, found {token[1]!r}")
        self.i += 1
        return token

    def parse(self) -> Node:
        if not self.tokens:
            raise ExpressionError("empty expression")
        node = self.disjunction()
        if self.i < len(self.tokens):
            raise ExpressionError(f"unexpected {self.tokens[self.i][1]!r}")
        return node

    def nested(self, parse: Callable[[], Node]) -> Node:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ExpressionError(f"expression is nested deeper than {MAX_DEPTH} levels")
        try:
            return parse()
        finally:
            self.depth -= 1

    def disjunction(self) -> Node:
        node = self.conjunction()
        while self.peek() == "or":
            self.take()
            node = ("or", node, self.conjunction())
        return node

    def conjunction(self) -> Node:
        node = self.negation()
        while self.peek() == "and":
            self.take()
            node = ("and", node, self.negation())
        return node

    def negation(self) -> Node:
        if self.peek() == "not":
            self.take()
            return ("not", self.nested(self.negation))
        return self.comparison()

    def comparison(self) -> Node:
        node = self.sum()
        if self.peek() in ("==", "!=", "<", "<=", ">", ">="):
            op = self.take()[1]
            node = ("compare", op, node, self.sum())
            if self.peek() in ("==", "!=", "<", "<=", ">", ">="):
                raise ExpressionError("chained comparisons are not supported; use `and`")
        return node

    def sum(self) -> Node:
        node = self.product()
        while self.peek() in ("+", "-"):
            op = self.take()[1]
            node = ("arith", op, node, self.product())
        return node

    def product(self) -> Node:
        node = self.unary()
        while self.peek() in ("*", "/", "//", "%"):
            op = self.take()[1]
            node = ("arith", op, node, self.unary())
        return node

    def unary(self) -> Node:
        if self.peek() in ("-", "+"):
            op = self.take()[1]
            operand = self.nested(self.unary)
            return ("negate", operand) if op == "-" else operand
        return self.postfix()

    def postfix(self) -> Node:
        node = self.atom()
        while self.peek() in (".", "["):
            if self.take()[1] == ".":
                kind, name = self.take()
                if kind != "name":
                    raise ExpressionError(f"expected a name after '.', found {name!r}")
                node = ("attr", node, name)
            else:
                node = ("index", node, self.nested(self.disjunction))
                self.take("]")
        return node

    def atom(self) -> Node:
        kind, text = self.take()
        if kind == "num":
            if len(text) > 18:
                raise ExpressionError(f"number {text[:20]}... is too large")
            return ("num", float(text) if "." in text else int(text))
        if kind == "str":
            return ("str", text[1:-1])
        if text == "(":
            node = self.nested(self.disjunction)
            self.take(")")
            return node
        if kind == "name" and text in ("true", "false"):
            return ("num", text == "true")
        if kind == "name" and text not in _KEYWORDS:
            if self.peek() == "(":
                return self.call(text)
            return ("name", text)
        raise ExpressionError(f"unexpected {text!r}")

    def call(self, function: str) -> Node:
        if function not in FUNCTIONS:
            raise ExpressionError(f"unknown function {function!r} (functions: {', '.join(FUNCTIONS)})")
        self.take("(")
        args = []
        while self.peek() != ")":
            args.append(self.nested(self.disjunction))
            if self.peek() != ")":
                self.take(",")
        self.take(")")
        return ("call", function, tuple(args))


Number = Union[int, float]


class Evaluation:
    """Evaluates parsed expressions against `names` (`in` among them, as an `Incoming`); `scale` is the width
    multiplier's rounding for channel counts. `used` collects the names an expression read (for messages)."""

    def __init__(self, names: Mapping[str, Any], scale: Callable[[int], int], width: float = 1.0):
        self.names, self.scale, self.width = names, scale, width
        self.used: dict[str, Any] = {}

    def __call__(self, node: Node) -> Any:
        return getattr(self, "_" + node[0])(*node[1:])

    def _num(self, value: Number) -> Number:
        return value

    def _str(self, value: str) -> str:
        return value

    def _name(self, name: str) -> Any:
        if name not in self.names:
            from .diagnostics import hint

            known = ", ".join(sorted(self.names)) or "none"
            raise ExpressionError(f"unknown name {name!r}{hint(name, self.names)} (names here: {known})")
        value = self.names[name]
        self.used[name] = value
        if isinstance(value, float) and not math.isfinite(value):
            raise ExpressionError(f"{name} is {value}, not a finite number")
        return value

    def _negate(self, node: Node) -> Number:
        value = self(node)
        if not _is_number(value):
            raise ExpressionError(f"- needs a number, got {show(value)}")
        return _checked(-value, is_channels(value))

    def _attr(self, node: Node, name: str) -> Any:
        value = self(node)
        if not isinstance(value, Incoming):
            raise ExpressionError(f"{show(value)} has no attribute {name!r} (only `in` has: in.channels, ...)")
        return value.attribute(name)

    def _index(self, node: Node, index: Node) -> Any:
        value, i = self(node), self(index)
        if not isinstance(value, (list, tuple)):
            raise ExpressionError(f"{show(value)} is not a list; it cannot be indexed")
        if type(i) not in (int, Channels):
            raise ExpressionError(f"a list index is an integer, not {show(i)}")
        if not -len(value) <= i < len(value):
            raise ExpressionError(f"index {i} is out of range for a list of {len(value)}")
        return value[i]

    def _not(self, node: Node) -> bool:
        return not _truth(self(node), "not")

    def _and(self, left: Node, right: Node) -> bool:
        return _truth(self(left), "and") and _truth(self(right), "and")

    def _or(self, left: Node, right: Node) -> bool:
        return _truth(self(left), "or") or _truth(self(right), "or")

    def _compare(self, op: str, left: Node, right: Node) -> bool:
        a, b = self._together(self(left), self(right), op)
        if op in ("==", "!="):
            return (a == b) == (op == "==")
        if not (_is_number(a) and _is_number(b)) and not (isinstance(a, str) and isinstance(b, str)):
            raise ExpressionError(f"cannot compare {show(a)} {op} {show(b)}")
        return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]

    def _arith(self, op: str, left: Node, right: Node) -> Union[Number, list[Number]]:
        a, b = self(left), self(right)
        if isinstance(a, (list, tuple)) and _is_number(b) and a and all(_is_number(x) for x in a):
            return [self._binary(op, x, b) for x in a]  # a kernel pair halved: `${kernel // 2}` at [1, 7]
        return self._binary(op, a, b)

    def _binary(self, op: str, a: Any, b: Any) -> Number:
        for x in (a, b):
            if not _is_number(x):
                raise ExpressionError(f"{op} needs numbers, got {show(x)}")
        if op in ("+", "-"):
            a, b = self._together(a, b, op)
        if op in ("/", "//", "%") and b == 0:
            raise ExpressionError(f"division by zero ({show(a)} {op} 0)")
        result = {"+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b, "/": lambda: a / b,
                  "//": lambda: a // b, "%": lambda: a % b}[op]()
        return _checked(result, is_channels(a) or (is_channels(b) and op in ("+", "-", "*")))

    def _call(self, function: str, args: tuple[Node, ...]) -> Number:
        values = [self(a) for a in args]
        if not values or not all(_is_number(v) for v in values):
            raise ExpressionError(f"{function}() takes numbers, got ({', '.join(map(show, values))})")
        if function == "make_divisible":
            if len(values) != 2 or type(values[1]) is not int or values[1] < 1:
                raise ExpressionError("make_divisible(value, divisor) takes a value and a positive integer divisor")
            value, divisor = values
            if is_channels(value):
                return _checked(make_divisible(value, divisor), True)
            # a count written at width 1: scaled here, unrounded, and rounded once (MobileNet's
            # make_divisible(c * width_mult, 8)); the result is a count at the spec's width, not scaled again
            return Channels(make_divisible(value * self.width, divisor))
        if function == "unscaled":
            if len(values) != 1 or type(values[0]) is not int:
                raise ExpressionError("unscaled(count) takes one integer")
            return _checked(values[0], True)  # a count already at the spec's width: never scaled
        channels = any(is_channels(v) for v in values)
        if function == "round":
            if len(values) != 1:
                raise ExpressionError("round(value) takes one value")
            return _checked(round(values[0]), channels)
        if channels:
            values = [v if is_channels(v) or type(v) is not int else self.scale(v) for v in values]
        return _checked((min if function == "min" else max)(values), channels)

    def _together(self, a: Any, b: Any, op: str) -> tuple[Any, Any]:
        """A plain integer that meets a channel count is a channel count at width 1: scale it first."""
        if is_channels(a) and type(b) is int:
            return a, self.scale(b)
        if is_channels(b) and type(a) is int:
            return self.scale(a), b
        return a, b


def make_divisible(value: float, divisor: int) -> int:
    """MobileNet's rounding (torchvision's `_make_divisible`; GluonCV's MobileNetV3 rounds up instead): the
    nearest multiple of `divisor`, at least `divisor`, and never more than 10% below `value` (one `divisor` more
    if so)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _truth(value: Any, op: str) -> bool:
    if not isinstance(value, bool):
        raise ExpressionError(f"{op} needs true or false, got {show(value)}")
    return value


def _checked(value: Number, channels: bool) -> Number:
    if isinstance(value, float) and not math.isfinite(value):
        raise ExpressionError(f"the result is {value}, not a finite number")
    if abs(value) > MAX_MAGNITUDE:
        raise ExpressionError("the result is too large")
    if channels:
        return Channels(value) if isinstance(value, int) else ChannelsFloat(value)
    return value


def show(value: Any) -> str:
    """A value as an expression's message quotes it."""
    if isinstance(value, Incoming):
        return f"in ({value})"
    text = repr(int(value)) if isinstance(value, Channels) else repr(float(value)) if isinstance(
        value, ChannelsFloat) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
