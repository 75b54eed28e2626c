"""Other libraries' weights -> the parameters of a spec (`archspec convert`).

A source file's arrays are grouped into layers by their names (`conv1.bn.running_mean` belongs to the layer
`conv1.bn`; `resnetv20_conv0_weight` to `resnetv20_conv0`), each layer recognised by its arrays alone: a batch
norm has running statistics (PyTorch's weight and bias are its gamma and beta), a convolution a 4-D weight, a
dense layer a 2-D one. The spec's built network is grouped the same way. Layers are then paired by structure
and shape: among the layers of one kind and shapes, the k-th of the spec takes the k-th of the file, in the
order the source network registered them (the file's order; a safetensors file keeps none, so its names are
ordered naturally: `features.2` before `features.10`). A file whose names are the spec's own paths is read by
name. Any layer without a partner, on either side, refuses the whole conversion and is named.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import numpy as onp

from ..files import save_atomically
from ..spec.diagnostics import InputError
from .compat import params_by_path
from .modules import Network
from .sources import Arrays, read

_STATS = {"running_mean": "running_mean", "running_var": "running_var", "moving_mean": "running_mean",
          "moving_var": "running_var"}
_ROLES = ("num_batches_tracked", *_STATS, "weight", "bias", "gamma", "beta")  # longest names first
_BATCHNORM = ("gamma", "beta", "running_mean", "running_var")
_BATCHNORM_ROLE = {"weight": "gamma", "bias": "beta", **_STATS}  # PyTorch's and old MXNet names -> Gluon's
_KINDS = {4: "convolution", 2: "dense layer"}
Shape = tuple[int, ...]


@dataclass(frozen=True)
class Layer:
    """One layer's arrays: its role in the layer (`gamma`, `weight`, ...) -> the array's full name, and shapes."""

    prefix: str
    names: dict[str, str]
    shapes: dict[str, Shape]

    @property
    def kind(self) -> str:
        if "running_mean" in self.names:
            return "batch norm"
        return _KINDS.get(len(self.shapes["weight"]), f"{len(self.shapes['weight'])}-D weight")

    @property
    def signature(self) -> tuple[str, tuple[tuple[str, Shape], ...]]:
        return self.kind, tuple(sorted(self.shapes.items()))

    def described(self) -> str:
        """`convolution 64x3x7x7`, `batch norm 64`."""
        main = self.shapes.get("weight", self.shapes.get("gamma", ()))
        return f"{self.kind} {'x'.join(map(str, main))}"


@dataclass
class Conversion:
    """What `convert` made: the spec's parameters by path, and which source array each came from."""

    spec: str
    source: str
    file: Path
    arrays: dict[str, onp.ndarray] = field(default_factory=dict)
    origin: dict[str, str] = field(default_factory=dict)  # spec path -> source array name
    by_name: bool = False
    ordered: bool = True

    def summary(self) -> str:
        layers = len({path.rsplit(".", 1)[0] for path in self.arrays})
        how = ("by name" if self.by_name else "by structure and shape" +
               ("" if self.ordered else ", same-shaped layers in the natural order of their names"))
        return (f"{self.file}: {len(self.arrays)} arrays ({layers} layers) of {self.source} weights matched to "
                f"{self.spec} {how}")


def _role(name: str) -> tuple[str, str]:
    """(layer prefix, role) of an array name, `.` or `_` before its role."""
    bare = re.sub(r"^(arg|aux):", "", name)
    for role in _ROLES:
        if bare == role:
            return "", role
        if bare.endswith(role) and bare[-len(role) - 1] in "._":
            return bare[:-len(role) - 1], role
    raise InputError(f"{name}: not a weight, bias or batch-norm array (its name ends in none of "
                     f"{', '.join(_ROLES)})")


def group(arrays: dict[str, Shape], where: str) -> list[Layer]:
    """The layers of named arrays (in their order), each checked to be a whole layer of a kind archspec knows."""
    found: dict[str, dict[str, str]] = {}
    for name in arrays:
        prefix, role = _role(name)
        if role != "num_batches_tracked":  # PyTorch's count of batches seen: no Gluon counterpart, not needed
            found.setdefault(prefix, {})[role] = name
    layers = []
    for prefix, names in found.items():
        if any(role in _STATS for role in names):
            names = {_BATCHNORM_ROLE.get(r, r): n for r, n in names.items()}
            if set(names) != set(_BATCHNORM):
                raise InputError(f"{where}: {prefix or 'the top level'}: a batch norm needs gamma (weight), beta "
                                 f"(bias), running_mean and running_var; the file has {', '.join(names.values())}")
        elif "weight" not in names or set(names) - {"weight", "bias"}:
            raise InputError(f"{where}: {', '.join(names.values())}: neither a convolution, a dense layer nor a "
                             "batch norm (a weight, its bias, or batch norm's four arrays)")
        layer = Layer(prefix, names, {role: tuple(arrays[n]) for role, n in names.items()})
        if layer.kind != "batch norm" and len(layer.shapes["weight"]) not in _KINDS:
            raise InputError(f"{where}: {names['weight']} has shape {layer.shapes['weight']}: neither a convolution's "
                             "4-D weight nor a dense layer's 2-D one")
        layers.append(layer)
    return layers


def _natural(text: str) -> list[Any]:
    """`features.10` after `features.2`."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", text)]


def without_aliases(targets: list[Layer], sources: list[Layer], arrays: Arrays) -> list[Layer]:
    """`sources` less the layers saved twice under two names (GluonCV's GoogLeNet registers its output layer
    as `output` and as `head.2`), where the file has more layers of that kind and shapes than the spec: a
    layer whose arrays all equal an earlier one's is the same layer. Only then: freshly initialised layers of
    one shape are equal too, and distinct."""
    wanted: dict[Any, int] = {}
    for layer in targets:
        wanted[layer.signature] = wanted.get(layer.signature, 0) + 1
    have: dict[Any, list[Layer]] = {}
    for layer in sources:
        have.setdefault(layer.signature, []).append(layer)
    excess = {sig for sig, layers in have.items() if len(layers) > wanted.get(sig, 0)}
    kept, seen = [], set()
    for layer in sources:
        if layer.signature in excess:
            values = tuple(arrays[layer.names[role]].tobytes() for role in sorted(layer.names))
            if values in seen:
                continue
            seen.add(values)
        kept.append(layer)
    return kept


def match(targets: list[Layer], sources: list[Layer], where: str) -> dict[str, str]:
    """spec path -> source array name, pairing the k-th layer of each kind and shapes on both sides; an
    `InputError` naming every layer left without a partner."""
    classes: dict[Any, tuple[list[Layer], list[Layer]]] = {}
    for side, layers in enumerate((targets, sources)):
        for layer in layers:
            classes.setdefault(layer.signature, ([], []))[side].append(layer)
    problems, mapping = [], {}
    for ours, theirs in classes.values():
        if len(ours) != len(theirs):
            first = (ours or theirs)[0]
            spec_side = ", ".join(layer.prefix for layer in ours[:4]) + (" ..." if len(ours) > 4 else "")
            file_side = ", ".join(layer.prefix for layer in theirs[:4]) + (" ..." if len(theirs) > 4 else "")
            problems.append(f"{first.described()}: the spec has {len(ours)}"
                            f"{' (' + spec_side + ')' if ours else ''}, the file {len(theirs)}"
                            f"{' (' + file_side + ')' if theirs else ''}")
            continue
        for target, source in zip(ours, theirs):
            mapping.update({target.names[role]: source.names[role] for role in target.names})
    if problems:
        more = f"; and {len(problems) - 6} more" if len(problems) > 6 else ""
        raise InputError(f"{where}: the file's layers do not match the spec's: " + "; ".join(problems[:6]) + more)
    return mapping


def convert(net: Network, source: str, file: Union[str, os.PathLike[str]]) -> Conversion:
    """The parameters of `net` (built from the spec) taken from `file`, a weights file of `source` (`mxnet`,
    `gluoncv`, `torch` or `safetensors`). Nothing is loaded into `net`; see `apply` and `write`."""
    arrays, ordered = read(source, file)
    where = str(file)
    expected = {path: tuple(p.shape) for path, p in params_by_path(net).items()}
    conversion = Conversion(net.spec.name, source, Path(file), ordered=ordered)
    if all(path in arrays and tuple(arrays[path].shape) == shape for path, shape in expected.items()):
        mapping, conversion.by_name = {path: path for path in expected}, True  # archspec's own names
        extra = sorted(set(arrays) - set(expected))
        if extra:
            raise InputError(f"{where}: arrays {net.spec.name} has no place for: {', '.join(extra[:5])}")
    else:
        sources = group({name: tuple(a.shape) for name, a in arrays.items()}, where)
        if not ordered:
            sources.sort(key=lambda layer: _natural(layer.prefix))
        targets = group(expected, f"{net.spec.name}")
        mapping = match(targets, without_aliases(targets, sources, arrays), where)
    conversion.origin = mapping
    conversion.arrays = {path: _float32(arrays[name]) for path, name in mapping.items()}
    return conversion


def _float32(array: onp.ndarray) -> onp.ndarray:
    return array.astype(onp.float32) if array.dtype != onp.float32 else array


def apply(net: Network, conversion: Conversion) -> None:
    """Set `net`'s parameters to a conversion's arrays."""
    from mxnet import np

    for path, param in params_by_path(net).items():
        param.set_data(np.array(conversion.arrays[path], dtype="float32"))


def write(conversion: Conversion, out: Union[str, os.PathLike[str]]) -> Path:
    """Write a conversion as a `.params` file `build_model`'s networks load (`load_parameters`, `--init`)."""
    from mxnet import nd

    out = Path(out)
    if not out.parent.is_dir():
        raise InputError(f"{out.parent}: no such directory")
    arrays = {path: nd.array(a, dtype="float32") for path, a in conversion.arrays.items()}
    save_atomically(out, lambda tmp: nd.save(tmp, arrays))
    return out


def convert_file(spec_or_path: Any, source: str, file: Union[str, os.PathLike[str]],
                 out: Union[str, os.PathLike[str]], overrides: Optional[dict[str, Any]] = None) -> Conversion:
    """`archspec convert`: build the spec (with `overrides`), convert `file` into it and write `out`."""
    from .build import build_model

    net = build_model(spec_or_path, overrides, hybridize=False)
    conversion = convert(net, source, file)
    write(conversion, out)
    return conversion
