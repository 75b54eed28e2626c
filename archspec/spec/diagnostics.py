"""Errors are values with a place: every problem a user can cause points at a YAML line.

`Mark` is a place in a file, `Problem` one located error or warning, `SpecError` a spec that cannot be
used (one or more problems), `InputError` any other file or value that cannot be used (a parameters
file for another network, a corrupt checkpoint, a bad setting).
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, Iterable, Literal, NamedTuple, Sequence

#: A path into the spec tree: keys and list indices, e.g. ("stages", "b3", 0, "inception", "c2").
FieldPath = tuple[Any, ...]
Severity = Literal["error", "warning"]


class Mark(NamedTuple):
    """A place in a source: file, 1-based line and column."""

    file: str
    line: int
    col: int

    def __deepcopy__(self, memo: Any) -> Mark:
        return self  # immutable; Pydantic copies a default (a layer's `_mark`) for every layer it validates


UNKNOWN = Mark("<spec>", 1, 1)


def format_path(path: Sequence[Any]) -> str:
    """`("stages", "b3", 0, "c1")` -> `stages.b3.0.c1`."""
    return ".".join(str(p) for p in path) or "<spec>"


def _workflow_escape(text: str, property_value: bool = False) -> str:
    """GitHub's escaping for workflow commands: a spec's text can never end the line or add a property."""
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return text.replace(":", "%3A").replace(",", "%2C") if property_value else text


@dataclass(frozen=True)
class Problem:
    """One error or warning, located in a YAML file."""

    file: str
    line: int
    col: int
    path: FieldPath
    message: str
    severity: Severity = "error"

    def __str__(self) -> str:
        level = "warning: " if self.severity == "warning" else ""
        return f"{self.file}:{self.line}:{self.col}: {level}{format_path(self.path)}: {self.message}"

    def github(self) -> str:
        """The same problem as a GitHub Actions workflow command, so CI logs annotate the YAML line."""
        text = _workflow_escape(f"{format_path(self.path)}: {self.message}")
        return (f"::{self.severity} file={_workflow_escape(self.file, True)},line={self.line},col={self.col}"
                f"::{text}")


class SpecError(ValueError):
    """A spec is invalid. Carries one or more located problems; `str()` prints one per line."""

    def __init__(self, problems: Iterable[Problem]):
        self.problems: tuple[Problem, ...] = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    # The first problem's place, for callers who want a single location.
    @property
    def file(self) -> str:
        return self.problems[0].file

    @property
    def line(self) -> int:
        return self.problems[0].line

    @property
    def col(self) -> int:
        return self.problems[0].col

    @property
    def path(self) -> FieldPath:
        return self.problems[0].path

    @property
    def message(self) -> str:
        return self.problems[0].message


class InputError(ValueError):
    """A file or setting that is not a spec is unusable: a parameters file for another network, a corrupt
    checkpoint, a missing dataset, a learning rate of nan. The message names the thing and what was expected."""


def problem(mark: Mark, path: Sequence[Any], message: str, severity: Severity = "error") -> Problem:
    return Problem(mark.file, mark.line, mark.col, tuple(path), message, severity)


def fail(mark: Mark, path: Sequence[Any], message: str) -> SpecError:
    return SpecError([problem(mark, path, message)])


def hint(word: str, choices: Iterable[Any]) -> str:
    """`; did you mean 'kernel'?` for a near miss, else the empty string."""
    close = difflib.get_close_matches(word, [str(c) for c in choices], n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def short(value: Any) -> str:
    """A value as a message quotes it: its repr, cut at 60 characters."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
