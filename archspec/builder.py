"""Spec -> Gluon. The only module (with `blocks`) that imports MXNet, and it does so lazily."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

from .analysis import Limits, summarize
from .errors import InputError, SpecError
from .layers import Layer, Shape
from .loader import Mark, problem
from .schema import Spec

# One cached graph with memory planned once (static_alloc) and shapes inferred once per input shape
# (static_shape): 13% faster at batch 1 than static_alloc alone, and as fast when the batch size changes
# (bench/run.py). Both only change how MXNet runs the graph, never what it computes.
HYBRIDIZE = {"static_alloc": True, "static_shape": True}

_INITIALIZERS = {"xavier": ("Xavier", {}), "msra": ("MSRAPrelu", {}), "normal": ("Normal", {"sigma": 0.01}),
                 "uniform": ("Uniform", {"scale": 0.07})}


def _shape_only(layers, shape: Shape, name=None) -> Shape:
    for layer in layers:
        shape = layer.trace(shape, _shape_only)
    return shape


def _sequence(layers, shape: Shape):
    """A HybridSequential of `layers`, whose first layer takes `shape`."""
    from mxnet.gluon import nn

    seq = nn.HybridSequential()
    for layer in layers:
        seq.add(_layer(layer, shape))
        shape = layer.trace(shape, _shape_only)
    return seq


def _layer(layer: Layer, shape: Shape):
    from mxnet.base import MXNetError

    try:
        return layer.gluon(shape, _sequence)
    except SpecError:
        raise
    except (MXNetError, ValueError, AssertionError, TypeError) as e:  # shapes were checked; this is a bug
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise SpecError([problem(layer._mark, layer._source, f"MXNet could not build this {layer.kind}: {first}")])


def _check_name(name: str, layers, path: tuple) -> None:
    from .blocks import Network

    if hasattr(Network, name):
        mark = layers[0]._mark if layers else Mark("<spec>", 1, 1)
        what = "stage" if path[0] == "stages" else "auxiliary head"
        raise SpecError([problem(mark, path, f"{what} name {name!r} clashes with an attribute of Gluon blocks; "
                                 "choose another")])


def build_model(spec_or_path: Spec | str | os.PathLike, overrides: Mapping[str, Any] | None = None, *,
                ctx=None, hybridize: bool = True, limits: Limits | None = Limits(), **kwargs):
    """Build the Gluon network a spec describes, initialised as the spec says.

    `spec_or_path` is a validated `Spec` or the path of a YAML spec. `overrides` (or keyword arguments)
    change the spec first: `build_model(path, {"stages.b3.0.c1": 96})`. The result is a
    `blocks.Network` whose children are the stages (`net.b3`, `net[2]`) and any auxiliary heads,
    hybridized unless `hybridize=False`. MXNet's numpy mode (`npx.set_np()`) is switched on, as in the D2L book.
    """
    from mxnet import init, npx

    from .blocks import Network

    if isinstance(spec_or_path, Spec):
        if overrides or kwargs:
            raise TypeError("overrides apply to a spec file; pass its path instead of a loaded Spec")
        spec = spec_or_path
    else:
        from . import load_spec

        spec = load_spec(spec_or_path, {**(overrides or {}), **kwargs})
    summary = summarize(spec, limits=limits)  # every shape and the budget are checked before MXNet allocates
    npx.set_np()
    net = Network(spec)
    for name, layers in spec.layers():
        _check_name(name, layers, ("stages", name))
        net.add_stage(name, _sequence(layers, summary.row(name).input))
    for name, head in spec.aux.items():
        _check_name(name, head.layers, ("aux", name))
        net.add_aux(name, _sequence(head.layers, summary.row(name).input), *head.tap)
    cls, options = _INITIALIZERS[spec.init]
    net.initialize(getattr(init, cls)(**options), ctx=ctx)
    if hybridize:
        net.hybridize(**HYBRIDIZE)
    return net


def traced(net):
    """The inference graph of a built network, traced on one example: `(inputs, symbol, weights)`, the
    weights being the parameters the graph uses, by name. What export and reduced precision start from."""
    from mxnet import np

    if not net._active:
        net.hybridize(**HYBRIDIZE)
    net(np.zeros((1,) + net.spec.input.shape)).wait_to_read()
    inputs, sym = net._cached_graph
    return inputs, sym, {p.name: p.data() for is_arg, p in net._cached_op_args if not is_arg}


def load_parameters(net, path: str | os.PathLike, ctx=None) -> None:
    """Load a `.params` file (from `save_parameters`, training or a checkpoint) into a built network.

    A file for another network is refused with an `InputError` naming what differs, before anything
    is loaded: no half-loaded network.
    """
    from mxnet import npx
    from mxnet.base import MXNetError

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such parameters file")
    try:
        saved = npx.load(str(path))
    except MXNetError:
        raise InputError(f"{path}: not an MXNet parameters file (corrupt or truncated?)") from None
    expected = {name: p.shape for name, p in net._collect_params_with_prefix().items()}
    if not isinstance(saved, dict):
        raise InputError(f"{path}: not a parameters file of named arrays")
    differences = [f"{n} has shape {tuple(saved[n].shape)}, {net.spec.name} needs {expected[n]}"
                   for n in expected if n in saved and tuple(saved[n].shape) != tuple(expected[n])]
    differences += [f"missing {n}" for n in expected if n not in saved]
    differences += [f"unexpected {n}" for n in saved if n not in expected]
    if differences:
        more = f" (and {len(differences) - 3} more)" if len(differences) > 3 else ""
        raise InputError(f"{path}: these parameters are not for {net.spec.name}: "
                         + "; ".join(differences[:3]) + more)
    net.load_parameters(str(path), ctx=ctx)
