"""A training recipe: the `train:` section of a spec (or of an overlay with `base:`), holding any setting of
`config.Config` (the command line's options, the schedule, the transforms). It is resolved with the spec, so a
base's recipe is merged key by key with an overlay's and `--set train.lr=0.05` overrides it; it is validated like a
spec, each problem at its file:line:col with a did-you-mean; an option given on the command line wins over the
recipe. No MXNet here: `archspec validate` checks recipes too.

    train:
      epochs: 10
      lr: 0.1
      schedule: cosine
      augment: [flip, {normalize: {mean: [0.286], std: [0.353]}}]
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional, Sequence

from pydantic import ValidationError

from ..spec.diagnostics import FieldPath, Mark, SpecError, problem
from ..spec.loader import Map
from ..spec.located import mark_of, pydantic_problems
from ..spec.resolve import load_resolved, merge
from .config import Config
from .transforms import TransformError, names_at

KEY = "train"


@dataclass(frozen=True)
class Recipe:
    """A spec's recipe: its values (validated) and the marked tree they were read from (empty: no recipe)."""

    values: dict[str, Any] = field(default_factory=dict)
    node: Optional[Map] = None

    def origins(self, given: Iterable[str]) -> dict[str, str]:
        """Where each setting of a run comes from: `--option` (given on the command line), `FILE:LINE` (the
        recipe), or `default`."""
        given = set(given)
        out = {}
        for name in Config.model_fields:
            if name in given:
                out[name] = "--" + name.replace("_", "-")
            elif self.node is not None and name in self.node:
                mark = self.node.value_mark(name)
                out[name] = f"{_short(mark.file)}:{mark.line}"
            else:
                out[name] = "default"
        return out

    def describe(self, config: Config, given: Iterable[str]) -> str:
        """The run's settings as a recipe, each line saying where its value came from (the run folder's
        recipe.yaml: `train:` of a spec reproduces the run)."""
        import yaml

        origins = self.origins(given)
        lines = ["# every setting of this run; after each, where it came from", f"{KEY}:"]
        for name, value in config.model_dump(mode="json").items():
            text = yaml.safe_dump({name: value}, default_flow_style=True, width=1 << 20).strip()[1:-1]
            lines.append(f"  {text}  # {origins[name]}")
        return "\n".join(lines) + "\n"

    def locate(self, error: TransformError, field_name: str) -> SpecError:
        """A transform that failed on the data (a crop larger than the images), at its place in the recipe."""
        path: FieldPath = (field_name, error.index, error.name)
        mark, _, _ = mark_of(self.node, path) if self.node is not None else (Mark("<recipe>", 1, 1), (), ())
        return SpecError([problem(mark, (KEY, *path), str(error))])


def _short(file: str) -> str:
    return file if file.startswith(("--set", "override", "<")) else os.path.basename(file)


def _fields_at(path: FieldPath) -> Sequence[str]:
    """The names a recipe may write at `path` (for did-you-mean hints)."""
    if not path:
        return list(Config.model_fields)
    if path[0] in ("augment", "evaluate") and len(path) >= 2:
        return names_at(path[1:])
    return []


def load_recipe(spec: Any, overrides: Any = None, base_outside: bool = False,
                recipe_file: Optional[str] = None) -> Recipe:
    """The recipe of a spec file (after its `base:` chain and `overrides`), with the `train:` of `recipe_file`
    (`--recipe`, a file of a `train:` section and perhaps a `base:` recipe) merged over it; `SpecError` at the
    recipe's lines."""
    node = _section(load_resolved(spec, overrides, base_outside)) if isinstance(spec, (str, os.PathLike)) else None
    if recipe_file is not None:
        tree = load_resolved(recipe_file, None, base_outside)
        extra = [key for key in tree if key not in (KEY, "base")]
        if extra:
            raise SpecError([problem(tree.key_mark(k), (k,), f"a recipe file holds `{KEY}:` (and `base:`), not "
                                                             f"{k!r}") for k in extra])
        node = merge(node, _section(tree)) if node is not None else _section(tree)
    if node is None:
        return Recipe()
    try:
        Config.model_validate(dict(node))
    except ValidationError as err:
        raise SpecError(sorted(pydantic_problems(err, node, (KEY,), _fields_at),
                               key=lambda p: (p.file, p.line, p.col))) from None
    return Recipe(dict(node), node)


def _section(tree: Map) -> Optional[Map]:
    node = tree.get(KEY)
    if node is not None and not isinstance(node, Map):
        raise SpecError([problem(tree.value_mark(KEY), (KEY,), "expected a mapping of training settings "
                                                               f"({', '.join(list(Config.model_fields)[:6])}, ...)")])
    return node
