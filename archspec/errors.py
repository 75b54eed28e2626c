"""Errors are values with a place: every problem a user can cause points at a YAML line."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

Path = tuple  # a path into the spec tree: keys and list indices, e.g. ("stages", "b3", 0, "inception", "c2")


def format_path(path: Sequence) -> str:
    """`("stages", "b3", 0, "c1")` -> `stages.b3.0.c1`."""
    return ".".join(str(p) for p in path) or "<spec>"


@dataclass(frozen=True)
class Problem:
    """One error or warning, located in a YAML file."""

    file: str
    line: int
    col: int
    path: tuple
    message: str
    severity: str = "error"

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}: {format_path(self.path)}: {self.message}"

    def github(self) -> str:
        """The same problem as a GitHub Actions workflow command, so CI logs annotate the YAML line."""
        level = "error" if self.severity == "error" else "warning"
        text = f"{format_path(self.path)}: {self.message}".replace("%", "%25").replace("\n", "%0A")
        return f"::{level} file={self.file},line={self.line},col={self.col}::{text}"


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
    def path(self) -> tuple:
        return self.problems[0].path

    @property
    def message(self) -> str:
        return self.problems[0].message


class InputError(ValueError):
    """A file that is not a spec is unusable: a parameters file for another network, a corrupt
    checkpoint, a missing dataset. The message names the file and what was expected."""

