"""Spec -> Gluon. The builder reads the spec's analysis: every row carries its layer, the shape it receives and
the rows of its child sequences; each kind's constructor makes its Gluon block."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional, Sequence, Union

from mxnet import init as mx_init
from mxnet import np, npx
from mxnet.base import MXNetError
from mxnet.gluon import nn

from ..spec import Overrides, Spec, load_spec, with_overrides
from ..spec.analysis import Limits, Row, summarize
from ..spec.diagnostics import UNKNOWN, InputError, SpecError, problem
from ..spec.kinds import Layers
from .check import agree, uses_own_kinds
from .compat import cached_graph, is_hybridized, params_by_path
from .layers import construct
from .modules import Network
from .rewrites import Rewrites
from .rewrites import apply as apply_rewrites

# Memory planned once and shapes inferred once per input shape: faster, same values (bench/results/settings.md).
HYBRIDIZE = {"static_alloc": True, "static_shape": True}

_INITIALIZERS: dict[str, tuple[str, dict[str, float]]] = {
    "xavier": ("Xavier", {}), "msra": ("MSRAPrelu", {}), "normal": ("Normal", {"sigma": 0.01}),
    "uniform": ("Uniform", {"scale": 0.07})}


def _sequence(rows: tuple[Row, ...]) -> nn.HybridSequential:
    """A HybridSequential of the layers of `rows`."""
    seq = nn.HybridSequential()
    for row in rows:
        seq.add(_block(row))
    return seq


def _block(row: Row) -> nn.HybridBlock:
    layer = row.layer
    assert layer is not None  # the row of a layer, not of a stage
    children = [_sequence(rows) if rows else None for _, rows in row.sequences]
    try:
        return construct(layer, row.input, children)
    # The shapes were checked: this is a bug, or a kind of the user's that cannot build itself.
    except (MXNetError, ValueError, AssertionError, TypeError, NotImplementedError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise SpecError([problem(layer._mark, layer._source, f"MXNet could not build this {layer.kind}: "
                                                             f"{first}")]) from None


def _check_name(name: str, layers: Layers, path: tuple[str, str]) -> None:
    if hasattr(Network, name):
        mark = layers[0]._mark if layers else UNKNOWN
        what = "stage" if path[0] == "stages" else "auxiliary head"
        raise SpecError([problem(mark, path, f"{what} name {name!r} clashes with an attribute of Gluon blocks; "
                                             "choose another")])


def build_model(spec_or_path: Union[Spec, str, os.PathLike[str]], overrides: Overrides = None, *,
                ctx: Any = None, hybridize: bool = True, limits: Optional[Limits] = Limits(),
                init: Union[str, os.PathLike[str], None] = None, strict: bool = False,
                outputs: Optional[Sequence[str]] = None, rewrites: Union[Rewrites, str, None] = None,
                **kwargs: Any) -> Network:
    """Build the Gluon network a spec describes, initialised as the spec says.

    `spec_or_path` is a validated `Spec` or the path of a YAML spec. `overrides` (or keyword arguments)
    change the spec first: `build_model(path, {"stages.b3.0.c1": 96})`. The result is a
    `gluon.modules.Network` whose children are the stages (`net.b3`, `net[2]`) and any auxiliary heads,
    hybridized unless `hybridize=False`. MXNet's numpy mode (`npx.set_np()`) is switched on, as in the D2L book.
    `init` (a `.params` file, a run folder or a converted file) then loads every array whose path and shape
    match (`gluon.transfer`; `strict` refuses any difference); its report is `net.transferred`. `outputs`
    (stage names) makes the network return those stages' outputs (`Network.give_outputs`). `rewrites` (a
    `gluon.rewrites.Rewrites`, or `--rewrites`' text such as `none`) says how the graph computes; the parameters
    stay in the spec's layout whatever it says.
    """
    if isinstance(spec_or_path, Spec):
        if overrides or kwargs:
            raise TypeError("overrides apply to a spec file; pass its path instead of a loaded Spec")
        spec = spec_or_path
    else:
        spec = load_spec(spec_or_path, with_overrides(overrides, kwargs), (limits or Limits()).max_layers)
    summary = summarize(spec, limits=limits)  # every shape and the budget are checked before MXNet allocates
    npx.set_np()
    net = Network(spec)
    for name, layers in spec.layers():
        _check_name(name, layers, ("stages", name))
        net.add_stage(name, _sequence(summary.row(name).layers))
    for name, head in spec.aux.items():
        _check_name(name, head.layers, ("aux", name))
        net.add_aux(name, _sequence(summary.row(name).layers), *head.tap)
    cls, options = _INITIALIZERS[spec.init]
    net.initialize(getattr(mx_init, cls)(**options), ctx=ctx)
    if any(uses_own_kinds(layers) for _, layers in spec.layers()):
        agree(net, summary)  # a plugin's block against its shape rule, before anything runs it
    if outputs:
        net.give_outputs(outputs)
    apply_rewrites(net, rewrites if isinstance(rewrites, Rewrites) else Rewrites.parse(rewrites))
    if init is not None:
        from .transfer import transfer

        net.transferred = transfer(net, init, strict)
    if hybridize:
        net.hybridize(**HYBRIDIZE)
    return net


def traced(net: Network, block: Any = None) -> tuple[Any, Any, dict[str, Any]]:
    """The inference graph of a built network (or `block`'s: its training graph, its folded one), traced on one example:
    `(inputs, symbol, weights)`, the weights being the parameters the graph uses, by name. What export and
    reduced precision start from."""
    block = net if block is None else block
    eager = not is_hybridized(block)
    if eager:
        block.hybridize(**HYBRIDIZE)
    out = block(np.zeros((1,) + net.spec.input.shape, ctx=net.collect_params().list_ctx()[0]))
    for array in out if isinstance(out, (tuple, list)) else [out]:
        array.wait_to_read()
    graph = cached_graph(block)
    if eager:  # the network stays as its user built it
        block.hybridize(False)
    return graph


def load_parameters(net: Network, path: Union[str, os.PathLike[str]], ctx: Any = None) -> None:
    """Load a `.params` file (from `save_parameters`, training or a checkpoint) into a built network.

    A file for another network, or one whose arrays hold NaN or infinity, is refused with an `InputError` naming
    what differs, before anything is loaded: no half-loaded network.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such parameters file")
    try:
        saved = npx.load(str(path))
    except MXNetError:
        raise InputError(f"{path}: not an MXNet parameters file (corrupt or truncated?)") from None
    expected = {name: p.shape for name, p in params_by_path(net).items()}
    if not isinstance(saved, dict):
        raise InputError(f"{path}: not a parameters file of named arrays")
    differences = [f"{n} has shape {tuple(saved[n].shape)}, {net.spec.name} needs {expected[n]}"
                   for n in expected if n in saved and tuple(saved[n].shape) != tuple(expected[n])]
    differences += [f"missing {n}" for n in expected if n not in saved]
    differences += [f"unexpected {n}" for n in saved if n not in expected]
    if differences and saved and all(n.startswith(("arg:", "aux:")) for n in saved):
        raise InputError(f"{path}: the weights of an MXNet export (`archspec export --format mxnet`), not of a "
                         "training run; `archspec predict` runs the export (NAME-symbol.json), other commands take "
                         "the .params a training run wrote")
    if differences:
        more = f" (and {len(differences) - 3} more)" if len(differences) > 3 else ""
        raise InputError(f"{path}: these parameters are not for {net.spec.name}: "
                         + "; ".join(differences[:3]) + more)
    # oneDNN's fused inference graph (the default) does not carry a NaN through every activation, so a broken file
    # could give finite, wrong scores: it is refused here, whatever runs it
    broken = [n for n in expected if not bool(np.isfinite(saved[n]).all())]
    if broken:
        more = f" (and {len(broken) - 3} more)" if len(broken) > 3 else ""
        raise InputError(f"{path}: NaN or infinite values in {', '.join(broken[:3])}{more} (corrupt, or a run "
                         "that diverged)")
    net.load_parameters(str(path), ctx=ctx)
