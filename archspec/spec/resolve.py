"""Resolution: from the file a user wrote to one plain tree. A spec may start from another
(`base: googlenet.yaml`) and be overridden from the command line or Python (`stages.b3.0.c1=96`).
Every value keeps the mark of where it was written - the base file, the child file, or the override.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Union

from .diagnostics import FieldPath, Mark, fail
from .loader import Map, Seq, load_yaml, marked, parse_yaml

MAX_BASE_DEPTH = 8


def merge(base: Any, child: Any) -> Any:
    """Child wins. Mappings merge key by key (a `null` value deletes the key); anything else is replaced."""
    if not (isinstance(base, Map) and isinstance(child, Map)):
        return child
    out = Map(mark=child.mark)
    for source in (base, child):
        for key, value in source.items():
            if source is child and value is None and key in base:
                out.pop(key, None)
                continue
            merged = merge(out[key], value) if (source is child and key in out) else value
            out.set(key, merged, source.value_mark(key), source.key_mark(key))
    return out


def load_resolved(source: Union[str, os.PathLike[str], Mapping[str, Any]],
                  overrides: Union[Mapping[str, Any], Iterable[str], None] = None,
                  base_outside: bool = False) -> Map:
    """Load a spec file (or take a mapping of the same data), follow its `base:` chain, apply `overrides`.
    A `base:` must lie inside the project of the spec named (see `Reach`) unless `base_outside`: an untrusted
    spec cannot make archspec read, and `resolve` print, any file it names."""
    if isinstance(source, Mapping):
        raw = marked(dict(source), Mark("<dict>", 1, 1))
        if "base" in raw:
            raise fail(raw.mark, ("base",), "`base:` needs a spec file; load the file instead of a dict")
    else:
        path = spec_path(source)
        raw = _with_bases(path, [], None if base_outside else Reach.of(path))
    for key, value, mark in parse_overrides(overrides):
        _apply_override(raw, key, value, mark)
    return raw


def spec_files(source: Union[str, os.PathLike[str]], base_outside: bool = False) -> list[Path]:
    """The files a spec is read from: the spec itself, then its `base:` chain (what a command must not write over)."""
    path = spec_path(source)
    files: list[Path] = []
    _with_bases(path, [], None if base_outside else Reach.of(path), files)
    return files


PROJECT_MARKERS = (".git", "pyproject.toml", ".archspec")


class Reach:
    """Where a spec's `base:` may point: inside the project the spec named belongs to (the nearest folder above it
    holding .git, pyproject.toml or .archspec; without one, the working directory), and always inside the spec's
    own folder (what the previous release allowed). Holds only those two folders and why the first is the root."""

    def __init__(self, root: Path, why: str, folder: Path):
        self.root, self.why, self.folder = root, why, folder

    @classmethod
    def of(cls, spec: Path) -> "Reach":
        folder = spec.resolve().parent
        for above in (folder, *folder.parents):
            marker = next((m for m in PROJECT_MARKERS if (above / m).exists()), None)
            if marker is not None:
                return cls(above, f"the project of {spec.name}: the nearest folder above it holding {marker}", folder)
        return cls(Path.cwd().resolve(), f"the working directory: no folder above {spec.name} holds "
                                         f"{', '.join(PROJECT_MARKERS)}", folder)

    def holds(self, path: Path) -> bool:
        return any(path == place or place in path.parents for place in (self.root, self.folder))


ZOO_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")  # no extension, no folder: what a name looks like


def zoo() -> Path:
    """The folder of the zoo's specs: `archspec/zoo` in an installed wheel, `specs/` in a checkout."""
    package = Path(__file__).resolve().parent.parent
    installed = package / "zoo"
    return installed if installed.is_dir() else package.parent / "specs"


def spec_path(source: Union[str, os.PathLike[str]]) -> Path:
    """The file a spec argument stands for. A name (`googlenet`: no extension, no folder) is the zoo's spec of
    that name unless a file of that name exists; anything else is a path, and a missing one is an error when
    read, never a zoo spec (`lenet.yml` is not `lenet`)."""
    path = Path(source)
    if not path.exists() and ZOO_NAME.match(str(source)) and (zoo() / f"{source}.yaml").is_file():
        return zoo() / f"{source}.yaml"
    return path


def zoo_names() -> list[str]:
    return sorted(p.stem for p in zoo().glob("*.yaml"))


def _base_path(path: Path, base: str) -> tuple[Path, bool]:
    """The file `base: BASE` in `path` names, and whether it is the zoo's. A value without a folder is looked for
    beside the spec first (`base: googlenet` finds googlenet.yaml there), then in the zoo (`googlenet`,
    `googlenet.yaml`); a value with a folder is a path only."""
    beside = (path.parent / base).resolve()
    if "/" in base or "\\" in base or beside.exists():
        return beside, False
    if "." not in base and (path.parent / f"{base}.yaml").is_file():
        return (path.parent / f"{base}.yaml").resolve(), False
    name = base.removesuffix(".yaml")
    if ZOO_NAME.match(name) and (zoo() / f"{name}.yaml").is_file():
        return zoo() / f"{name}.yaml", True
    return beside, False


def _with_bases(path: Path, chain: list[Path], reach: Optional[Reach], files: Optional[list[Path]] = None) -> Map:
    raw = load_yaml(path)
    if files is not None:
        files.append(path)
    base = raw.get("base")
    if base is None:
        return raw
    mark = raw.value_mark("base")
    if not isinstance(base, str):
        raise fail(mark, ("base",), f"base must be a path to another spec, got {base!r}")
    if not base.strip():
        raise fail(mark, ("base",), "base is empty; name a spec file (base: googlenet.yaml) or a zoo spec (base: "
                                    "googlenet), or remove the line")
    base_path, trusted = _base_path(path, base)
    if trusted:
        reach = None  # the zoo's specs are trusted, and their own bases are the zoo's
    elif reach is not None and not reach.holds(base_path):
        raise fail(mark, ("base",), f"base {base!r} is outside {reach.root} ({reach.why}); pass --base-outside "
                                    "to follow it")
    if base_path in chain or base_path == path.resolve():
        raise fail(mark, ("base",), f"circular base: {base} is already being loaded")
    if len(chain) >= MAX_BASE_DEPTH:
        raise fail(mark, ("base",), f"base chain longer than {MAX_BASE_DEPTH}")
    _check_base_file(base, base_path, mark)
    parent = _with_bases(base_path, chain + [path.resolve()], reach, files)
    child = Map(mark=raw.mark)
    for key, value in raw.items():
        if key != "base":
            child.set(key, value, raw.value_mark(key), raw.key_mark(key))
    return merge(parent, child)


def _check_base_file(base: str, base_path: Path, mark: Mark) -> None:
    """A base that is not a regular file, said for what it is."""
    if base_path.is_dir():
        raise fail(mark, ("base",), f"base {base!r} is a folder ({base_path}); name a spec file in it")
    if base_path.exists() and not base_path.is_file():
        raise fail(mark, ("base",), f"base {base!r} is not a regular file ({base_path} is a named pipe, socket or "
                                    "device); a base is a YAML spec file")
    if not base_path.exists():
        zoo_too = " or in the zoo" if ZOO_NAME.match(base.removesuffix(".yaml")) else ""
        raise fail(mark, ("base",), f"base spec {base!r} not found beside the spec{zoo_too} (looked for "
                                    f"{base_path})")


def parse_overrides(overrides: Union[Mapping[str, Any], Iterable[str], None]) -> list[tuple[str, Any, Mark]]:
    """`{"stages.b3.0.c1": 96}` or `["stages.b3.0.c1=96"]` (values parsed as YAML)."""
    if not overrides:
        return []
    out = []
    if isinstance(overrides, Mapping):
        for key, value in overrides.items():
            name = f"override {key}={value!r}"
            out.append((str(key), marked(value, Mark(name, 1, 1)), Mark(name, 1, 1)))
        return out
    for text in overrides:
        name = f"--set {text}"
        key, sep, value = text.partition("=")
        if not sep or not key.strip():
            raise fail(Mark(name, 1, 1), (), "an override is written path=value, e.g. stages.b3.0.c1=96")
        parsed = parse_yaml(value, name) if value.strip() else None
        out.append((key.strip(), parsed, Mark(name, 1, len(key) + 2)))
    return out


def _apply_override(raw: Map, key: str, value: Any, mark: Mark) -> None:
    node, part, _ = locate(raw, key, mark)
    assign(node, part, value, mark)


def assign(node: Union[Map, Seq], part: Any, value: Any, mark: Mark) -> None:
    """Set `node[part]` to `value`, which a message locates at `mark` (where `locate` pointed)."""
    if isinstance(node, Map):
        node.set(part, value, mark, mark)
    else:
        node[part], node.item_marks[part] = value, mark


def locate(raw: Map, key: str, mark: Mark, what: str = "override") -> tuple[Union[Map, Seq], Any, FieldPath]:
    """Where a path such as `stages.b3.0.c1` points: the mapping or list that holds its last part, that part, and
    the field path of the holder. A path that goes nowhere is a `SpecError` at `mark` (`what` names the path's
    role in the message: an override, a space's variable)."""
    parts = [int(p) if _INDEX.match(p) else p for p in key.split(".")]
    if len(parts) == 1 and isinstance(raw.get("args"), Map) and key in raw["args"]:
        parts = ["args", key]  # build_model(path, num_classes=100) sets the spec's argument
    node: Any = raw
    path: FieldPath = ()
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        # `stages.b3.0.c1` may skip the kind key of a layer entry: descend into its single body.
        if isinstance(node, Map) and part not in node and part != "repeat" and _is_layer_entry(node):
            kind = next(k for k in node if k != "repeat")
            if isinstance(node[kind], Map):
                node, path = node[kind], path + (kind,)
            elif isinstance(part, str) and part != "when" and path and isinstance(path[-1], int):
                where = ".".join(map(str, path))  # `- dense: 10`, an item of a list: no field beside the kind
                raise fail(mark, path, f"{what} {key}: the entry at {where} is written short ({kind}: "
                           f"{node[kind]!r}), with no field {part!r} of its own; set it as a whole, e.g. "
                           f"{where}.{kind}={{{part}: VALUE}}")
        if isinstance(node, Map) and isinstance(part, str):
            if last:
                return node, part, path
            if part not in node:
                raise fail(mark, path + (part,), f"{what} {key}: no field {part!r} here "
                           f"(has: {', '.join(map(str, node)) or 'nothing'})")
            node, path = node[part], path + (part,)
        elif isinstance(node, Seq) and isinstance(part, int):
            if not -len(node) <= part < len(node):
                raise fail(mark, path + (part,), f"{what} {key}: index {part} is out of range "
                           f"(the list has {len(node)} items)")
            if last:
                return node, part, path
            node, path = node[part], path + (part,)
        elif isinstance(node, Seq):
            raise fail(mark, path + (part,), f"{what} {key}: a list is indexed by a whole number (0 to "
                       f"{len(node) - 1}, or -1 from the end), not {part!r}")
        elif isinstance(node, Map):
            raise fail(mark, path + (part,), f"{what} {key}: {part} indexes a list, but here is a mapping "
                       f"(has: {', '.join(map(str, node)) or 'nothing'})")
        else:
            raise fail(mark, path + (part,), f"{what} {key}: cannot go into the value {node!r} with {part!r}")
    raise AssertionError("unreachable: a path has at least one part")


_INDEX = re.compile(r"^-?[0-9]+$", re.ASCII)  # a list index: not `²` or `--1`, which str.isdigit lets through


def _is_layer_entry(node: Map) -> bool:
    return len([k for k in node if k != "repeat"]) == 1


def annotated_yaml(raw: Any) -> str:
    """The resolved tree as YAML, each value followed by `# file:line` of where it was written."""
    import yaml

    def origin(mark: Mark) -> str:
        name = mark.file if mark.file.startswith(("--set", "override", "<")) else os.path.basename(mark.file)
        return f"  # {name}:{mark.line}"

    def scalar(value: Any) -> str:
        return yaml.safe_dump(value, default_flow_style=True, width=1 << 20).strip().removesuffix("\n...").strip()

    def emit(node: Any, pad: str) -> list[str]:
        lines = []
        items = node.items() if isinstance(node, Map) else enumerate(node)
        for key, value in items:
            head = f"{pad}{key}:" if isinstance(node, Map) else f"{pad}-"
            where = origin(node.value_mark(key))
            if isinstance(value, (Map, Seq)) and value:
                lines.append(head + where)
                lines += emit(value, pad + "  ")
            else:
                empty = "{}" if isinstance(value, Map) else "[]" if isinstance(value, Seq) else scalar(value)
                lines.append(f"{head} {empty}{where}")
        return lines

    return "\n".join(emit(raw, "")) + "\n"
