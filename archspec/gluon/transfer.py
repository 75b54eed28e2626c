"""Starting a network from another's weights (`build_model(..., init=FILE)`, `archspec train --init FILE`):
every array whose path and shape match is loaded, the others keep their initialisation, and a report says
which were transferred and why the rest were not.

A variant that wraps or inserts layers moves the paths of the others (googlenet-se's `b3.0.0.branch1` is
googlenet's `b3.0.branch1`), so the layers left over on both sides are then paired by structure: the longest
common subsequence of their kinds and shapes, in network order (`gluon.convert` groups arrays into layers)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from ..spec.diagnostics import InputError
from .compat import params_by_path
from .modules import Network
from .convert import group
from .sources import Arrays, read_mxnet


@dataclass
class Transfer:
    """What `transfer` loaded: the arrays transferred, those kept as initialised (with the reason), and the
    file's arrays the network has no place for."""

    file: Path
    total: int
    transferred: list[str] = field(default_factory=list)
    moved: dict[str, str] = field(default_factory=dict)  # path -> the file's path it was taken from
    kept: dict[str, str] = field(default_factory=dict)  # path -> why it was not transferred
    unused: list[str] = field(default_factory=list)

    def report(self, limit: int = 8) -> str:
        """`transferred 285/287 arrays from FILE; initialised: head.1.weight (shape 10x1024 -> 5x1024), ...`"""
        text = f"transferred {len(self.transferred)}/{self.total} arrays from {self.file}"
        if self.moved:
            text += f" ({len(self.transferred) - len(self.moved)} by path, {len(self.moved)} by structure)"
        if self.kept:
            reasons = [f"{path} ({why})" for path, why in self.kept.items()]
            text += f"; {len(self.kept)} initialised instead: " + ", ".join(reasons[:limit])
            text += f" (and {len(reasons) - limit} more)" if len(reasons) > limit else ""
        if self.unused:
            text += f"; {len(self.unused)} of the file's arrays unused: " + ", ".join(self.unused[:limit])
            text += f" (and {len(self.unused) - limit} more)" if len(self.unused) > limit else ""
        return text


def _shape(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape))


def init_file(path: Union[str, os.PathLike[str]]) -> Path:
    """The parameters `--init` names: a `.params` file, or a run folder's final.params (else its newest
    checkpoint's)."""
    path = Path(path)
    if path.is_dir():
        if (path / "final.params").is_file():
            return path / "final.params"
        checkpoints = sorted((path / "checkpoints").glob("step-*.params"))
        if not checkpoints:
            raise InputError(f"{path}: a folder without final.params or checkpoints/step-*.params")
        return checkpoints[-1]
    if not path.is_file():
        raise InputError(f"{path}: no such parameters file or run folder")
    return path


def transfer(net: Network, path: Union[str, os.PathLike[str]], strict: bool = False) -> Transfer:
    """Load into `net` every array of `path` whose path and shape match. `strict` refuses any difference;
    a file of which nothing fits is refused either way. Nothing is loaded when it is refused."""
    file = init_file(path)
    arrays, _ = read_mxnet(file)
    params = params_by_path(net)
    result = Transfer(file, len(params))
    for name, param in params.items():
        if name not in arrays:
            result.kept[name] = "not in the file"
        elif tuple(arrays[name].shape) != tuple(param.shape):
            result.kept[name] = f"shape {_shape(arrays[name].shape)} -> {_shape(param.shape)}"
        else:
            result.transferred.append(name)
    broken = {name.rsplit(".", 1)[0] for name in result.kept}  # whole layers only: no bias without its weight
    for name in [n for n in result.transferred if n.rsplit(".", 1)[0] in broken]:
        result.transferred.remove(name)
        result.kept[name] = "the rest of its layer does not fit"
    result.unused = [name for name in arrays if name not in params]
    if not strict:
        _by_structure(result, arrays, {name: tuple(params[name].shape) for name in result.kept})
    if not result.transferred:
        raise InputError(f"{file}: nothing fits {net.spec.name}: no array has the path and shape of one of its "
                         f"{len(params)} ({result.report(3).split('; ', 1)[-1]})")
    if strict and (result.kept or result.unused):
        raise InputError(f"{file}: --strict: {result.report(5)}")
    from mxnet import np

    for name in result.transferred:
        params[name].set_data(np.array(arrays[result.moved.get(name, name)], dtype=params[name].dtype))
    return result


def _by_structure(result: Transfer, arrays: Arrays, kept: dict[str, tuple[int, ...]]) -> None:
    """Pair the layers left over (`kept` in the network, `result.unused` in the file) by the longest common
    subsequence of their kinds and shapes; whole layers only."""
    try:
        ours = [layer for layer in group(kept, "network") if set(layer.names.values()) <= set(kept)]
        theirs = group({n: tuple(arrays[n].shape) for n in result.unused}, str(result.file))
    except InputError:  # leftovers that are not whole layers: leave them to the report
        return
    for a, b in _common_subsequence([layer.signature for layer in ours], [layer.signature for layer in theirs]):
        for role, name in ours[a].names.items():
            result.moved[name] = theirs[b].names[role]
    result.transferred += list(result.moved)
    for name, source in result.moved.items():
        del result.kept[name]
        result.unused.remove(source)


def _common_subsequence(a: list[Any], b: list[Any]) -> list[tuple[int, int]]:
    """Index pairs of a longest common subsequence of `a` and `b` (dynamic programming, len(a) x len(b))."""
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(len(a) - 1, -1, -1):
        for j in range(len(b) - 1, -1, -1):
            table[i][j] = table[i + 1][j + 1] + 1 if a[i] == b[j] else max(table[i + 1][j], table[i][j + 1])
    pairs, i, j = [], 0, 0
    while i < len(a) and j < len(b):
        if a[i] == b[j]:
            pairs.append((i, j))
            i, j = i + 1, j + 1
        elif table[i + 1][j] >= table[i][j + 1]:
            i += 1
        else:
            j += 1
    return pairs
