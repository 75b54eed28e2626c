"""A kind of the user's keeps its word: its Gluon block gives the shape its shape rule promised. archspec's own
kinds are tested against their rules; a plugin's are checked when a network using one is built, one example run
layer by layer, so a block that disagrees is refused at its YAML line before anything runs or is written."""
from __future__ import annotations

from mxnet import np
from mxnet.base import MXNetError

from ..spec import Spec
from ..spec.analysis import Summary
from ..spec.diagnostics import SpecError, problem
from ..spec.kinds import Layer, Layers
from ..spec.tables import format_shape
from .modules import Network


def uses_own_kinds(layers: Layers) -> bool:
    """Whether `layers` (their children included) hold a kind registered from outside archspec."""
    return any(not type(layer).__module__.startswith("archspec.")
               or any(uses_own_kinds(seq) for _, seq in layer.sequences() if seq) for layer in layers)


def agree(net: Network, summary: Summary) -> None:
    """Run one example of zeros through the stages of `net`, layer by layer; raise `SpecError` at the first layer
    whose block fails or whose output differs from the analysis in `summary` (a layer holding a failing one is
    named by its own line)."""
    x = np.zeros((1,) + summary.input, ctx=net.collect_params().list_ctx()[0])
    for (name, _), stage in zip(net.spec.layers(), net):
        for row, block in zip(summary.row(name).layers, stage):
            layer = row.layer
            assert layer is not None  # a stage's rows are its layers'
            try:
                x = block(x)
            except MXNetError as e:
                raise _disagrees(layer, f"its Gluon block cannot run on input {format_shape(row.input)} "
                                        f"({str(e).strip().splitlines()[0][:200]})") from None
            if tuple(x.shape[1:]) != row.output:
                raise _disagrees(layer, f"its Gluon block gives {format_shape(tuple(x.shape[1:]))} on input "
                                        f"{format_shape(row.input)}, its shape rule {format_shape(row.output)}")


def _disagrees(layer: Layer, why: str) -> SpecError:
    return SpecError([problem(layer._mark, layer._source, f"{layer.kind}: {why}; the kind's shape rule (infer) "
                                                          "and its gluon constructor must agree")])


def check_with_mxnet(spec: Spec, summary: Summary) -> tuple[str, bool]:
    """`archspec summary --build`: build the network, run one example through it stage by stage, and compare with the analysis."""
    from .build import build_model

    lines, agrees = ["built with MXNet:"], True
    try:
        net = build_model(spec, hybridize=False)
    except SpecError as e:  # a kind of the user's whose block breaks its shape rule: refused as it is built
        return "\n".join(lines + [f"  MISMATCH: {p}" for p in e.problems]), False
    x = np.zeros((1,) + summary.input)
    for stage, row in zip(net, summary.stages):
        try:
            x = stage(x)
        except MXNetError as e:  # the analysis promised shapes that MXNet cannot run: a kind's rule is wrong
            lines.append(f"  {row.path:<8} MISMATCH: MXNet cannot run it ({str(e).strip().splitlines()[0][:200]})")
            return "\n".join(lines), False
        ok = tuple(x.shape[1:]) == row.output
        agrees &= ok
        lines.append(f"  {row.path:<8} output {tuple(x.shape)}  "
                     + ("ok" if ok else f"MISMATCH (analysis says {format_shape(row.output)})"))
    count = sum(p.data().size for p in net.collect_params().values())
    agrees &= count == summary.weights
    lines.append(f"  {count:,} parameters in collect_params() "
                 + ("ok" if count == summary.weights else "MISMATCH"))
    return "\n".join(lines), agrees
