"""The few Gluon modules that MXNet does not ship (the ones most specs need are in `mxnet.gluon.nn`):
branches merged, local response normalisation, and the network itself."""
from __future__ import annotations

from contextlib import nullcontext
from functools import reduce
from typing import Any, Iterator, Optional, Sequence

from mxnet import autograd
from mxnet import init as mx_init
from mxnet.gluon import nn

from ..spec.diagnostics import InputError
from .compat import QuietUnusedParameters, is_hybridized
from .rewrites import Rewrites, folding, fused, sibling_groups


class ParallelBlock(nn.HybridBlock):
    """Runs each branch on the same input and merges the outputs.

    The loop over branches runs once, when `hybridize()` traces the graph; afterwards the cached
    graph holds the branches and the merge as plain operators.
    """

    def __init__(self, branches: Sequence[tuple[Optional[str], Optional[nn.HybridBlock]]], merge: str,
                 windows: Optional[Sequence[tuple[int, int, int, int]]] = None, same_shapes: bool = False):
        """`branches`: each branch's name (`kinds.Parallel.sequences` names them) and block (None: the identity);
        `windows`: the (top, left, height, width) of each branch's output to merge (`crop: center`), or None;
        `same_shapes`: every branch's output has the same shape (no broadcasting), as the analysis measured it."""
        super().__init__()
        self._merge = merge
        self._same_shapes = same_shapes
        self._windows = windows
        self._names: list[Optional[str]] = []  # None marks an identity branch
        for name, branch in branches:
            if branch is not None and name is not None:
                setattr(self, name, branch)  # registers the child; `block.branch2` reads like D2L's b2_1
            self._names.append(name if branch is not None else None)
        self._fused: list[list[int]] = []  # branches whose first convolutions run as one (gluon.rewrites)

    def fuse_siblings(self, on: bool = True) -> None:
        """Run the first convolutions of branches that can share one as one (`rewrites.fused`), or not. Call
        before the block is first run (the graph is traced then)."""
        firsts = [getattr(self, name)[0] if name is not None and len(getattr(self, name)) else None
                  for name in self._names]
        self._fused = sibling_groups(firsts) if on else []

    def hybrid_forward(self, F: Any, x: Any) -> Any:
        outs: list[Any] = [None] * len(self._names)
        for group in self._fused:
            branches = [getattr(self, str(self._names[i])) for i in group]  # sibling_groups: no empty branch
            for i, branch, y in zip(group, branches, fused(F, x, [b[0] for b in branches])):
                for k in range(1, len(branch)):
                    y = branch[k](y)
                outs[i] = y
        outs = [out if out is not None else x if name is None else getattr(self, name)(x)
                for out, name in zip(outs, self._names)]
        if self._windows is not None:  # static sizes, from the analysis: symbols have no shape to read
            outs = [F.npx.slice(out, begin=(None, None, top, left), end=(None, None, top + height, left + width))
                    for out, (top, left, height, width) in zip(outs, self._windows)]
        if self._merge == "concat":
            return concat_channels(F, outs)
        if self._merge == "add" and self._same_shapes:
            return add_same_shapes(F, outs)
        return reduce(F.np.add if self._merge == "add" else F.np.multiply, outs)


def add_same_shapes(F: Any, arrays: Sequence[Any]) -> Any:
    """The sum of equally shaped arrays through MXNet's classic `elemwise_add`: its oneDNN kernel keeps oneDNN's
    blocked layout where numpy's `add` reorders both operands to NCHW, in training too, and the oneDNN backend
    fuses it into the convolution before it (a residual sum). Same values as `np.add`."""
    return reduce(F.elemwise_add, (a.as_nd_ndarray() for a in arrays)).as_np_ndarray()


def concat_channels(F: Any, arrays: Sequence[Any]) -> Any:
    """`np.concatenate(arrays, axis=1)` through MXNet's classic `Concat`, whose oneDNN kernel keeps oneDNN's
    blocked layout where numpy's reorders every branch (bench/results/settings.md). Same values, both ways."""
    return F.Concat(*(a.as_nd_ndarray() for a in arrays), dim=1).as_np_ndarray()


class LRNBlock(nn.HybridBlock):
    """Local response normalisation (Gluon has the operator, not a block)."""

    def __init__(self, size: int, alpha: float, beta: float, k: float):
        super().__init__()
        self._options = dict(nsize=size, alpha=alpha, beta=beta, knorm=k)

    def hybrid_forward(self, F: Any, x: Any) -> Any:
        return F.LRN(x.as_nd_ndarray(), **self._options).as_np_ndarray()


class Pad(nn.HybridBlock):
    """Zeros added to each side of an image on its own: (top, bottom, left, right)."""

    def __init__(self, sides: tuple[int, int, int, int]):
        super().__init__()
        self._width = (0, 0, 0, 0) + sides

    def hybrid_forward(self, F: Any, x: Any) -> Any:
        return F.pad(x.as_nd_ndarray(), mode="constant", pad_width=self._width).as_np_ndarray()


class Scale(nn.HybridBlock):
    """x times a constant."""

    def __init__(self, value: float):
        super().__init__()
        self._value = value

    def hybrid_forward(self, F: Any, x: Any) -> Any:
        return x * self._value


class LayerScale(nn.HybridBlock):
    """x times a learnt factor per channel (axis 1), `gamma`, of `channels` values starting at `init`."""

    def __init__(self, channels: int, init: float, rank: int):
        super().__init__()
        self._shape = (channels,) + (1,) * (rank - 1)  # broadcast over the axes after the channels
        self.gamma = self.params.get("gamma", shape=(channels,), init=mx_init.Constant(init))

    def hybrid_forward(self, F: Any, x: Any, gamma: Any) -> Any:
        return x * F.np.reshape(gamma, self._shape)


class HardSigmoid(nn.HybridBlock):
    """relu6(x + 3) / 6 (MobileNetV3), or x times it (`swish=True`: hard-swish)."""

    def __init__(self, swish: bool = False):
        super().__init__()
        self._swish = swish

    def hybrid_forward(self, F: Any, x: Any) -> Any:
        gate = F.np.clip(x + 3, 0, 6) / 6
        return x * gate if self._swish else gate


class ReLU6(nn.HybridBlock):
    """min(max(x, 0), 6) (MobileNetV2)."""

    def hybrid_forward(self, F: Any, x: Any) -> Any:
        return F.np.clip(x, 0, 6)


class Upsample(nn.HybridBlock):
    """Spatial upsampling to a fixed size: nearest neighbour by an integer factor, or bilinear."""

    def __init__(self, size: tuple[int, int], scale: int, mode: str, align_corners: bool):
        super().__init__()
        self._size, self._scale, self._mode, self._align = size, scale, mode, align_corners

    def hybrid_forward(self, F: Any, x: Any) -> Any:
        x = x.as_nd_ndarray()
        if self._mode == "nearest":
            y = F.UpSampling(x, scale=self._scale, sample_type="nearest")
        else:
            y = F.contrib.BilinearResize2D(x, height=self._size[0], width=self._size[1], align_corners=self._align)
        return y.as_np_ndarray()


class Network(QuietUnusedParameters):
    """The built network: named stages run in order (`net.b3`, `net[2]`, `for stage in net`), and the
    spec it was built from (`net.spec`).

    Auxiliary heads (`net.aux1`) run only while training: under `autograd.record()` the network
    returns `(main, *aux)`, otherwise only the main output. Each mode is its own graph, so when
    hybridized, inference never pays for the heads and training traces them once.
    """

    # instance attributes, declared on the class so that a stage cannot be named like them (spec/gluon_names.py)
    spec: Any = None
    transferred: Any = None  # what build_model(init=FILE) loaded (gluon.transfer.Transfer)
    rewrites: Any = Rewrites()  # the graph rewrites it was built with (gluon.rewrites)

    def __init__(self, spec: Any):
        super().__init__()
        self.spec = spec
        self._stages: list[str] = []
        self._taps: dict[tuple[str, Optional[int]], list[str]] = {}  # (stage, layer or None) -> heads there
        self._aux: list[str] = []
        self.transferred = None
        self._outputs: list[str] = []  # stages whose outputs inference returns (give_outputs); [] the last
        object.__setattr__(self, "_training_graph", None)  # not a child: it shares this block's children
        object.__setattr__(self, "_folded_graph", None)  # the same: inference with batch norms folded
        object.__setattr__(self, "_hybridized_with", {})

    def add_stage(self, name: str, stage: nn.HybridSequential) -> None:
        setattr(self, name, stage)  # registers the child under the stage's name
        self._stages.append(name)

    def add_aux(self, name: str, head: nn.HybridSequential, stage: str, index: Optional[int]) -> None:
        """A head tapped after layer `index` of `stage` (after the whole stage if None)."""
        setattr(self, name, head)
        self._taps.setdefault((stage, index), []).append(name)
        self._aux.append(name)
        if self._training_graph is None:
            object.__setattr__(self, "_training_graph", _View(self, with_aux=True))

    def give_outputs(self, names: Sequence[str]) -> None:
        """Return the outputs of these stages, in this order, instead of the last stage's (a backbone's
        features: `build_model(spec, outputs=["b4", "b5"])`); stages after the last named are not run."""
        unknown = [name for name in names if name not in self._stages]
        if unknown:
            raise InputError(f"outputs: {self.spec.name} has no stage {', '.join(unknown)} (its stages: "
                             f"{', '.join(self._stages)})")
        self._outputs = list(names)

    @property
    def output_names(self) -> list[str]:
        """The stages whose outputs the network gives in inference."""
        return list(self._outputs) or self._stages[-1:]

    @property
    def stage_names(self) -> list[str]:
        """The stages' names, in order (`b1` ... `head`)."""
        return list(self._stages)

    def __getitem__(self, key: int | str) -> Any:
        return getattr(self, self._stages[key] if isinstance(key, int) else key)

    def __len__(self) -> int:
        return len(self._stages)

    def __iter__(self) -> Iterator[Any]:
        return (getattr(self, name) for name in self._stages)

    def training_block(self) -> nn.HybridBlock:
        """The block a training step calls: this one, or the graph that also returns the auxiliary heads."""
        return self if self._training_graph is None else self._training_graph

    def folded(self) -> nn.HybridBlock:
        """The inference graph with every batch norm after a convolution folded into it (`rewrites.ConvBatchNorm`),
        over this network's own parameters: the same outputs in inference, as `self` gives them."""
        if self._folded_graph is None:
            graph = _View(self, fold=True)
            if is_hybridized(self):
                graph.hybridize(True, **self._hybridized_with)
            object.__setattr__(self, "_folded_graph", graph)
        return self._folded_graph

    def hybridize(self, active: bool = True, *args: Any, **kwargs: Any) -> None:
        super().hybridize(active, *args, **kwargs)
        object.__setattr__(self, "_hybridized_with", kwargs)  # for the folded graph made later
        for graph in (self._training_graph, self._folded_graph):
            if graph is not None:
                graph.hybridize(active, *args, **kwargs)

    def forward(self, x: Any, *args: Any) -> Any:
        if self._training_graph is not None and autograd.is_training():
            return self._training_graph(x)
        return super().forward(x, *args)

    def hybrid_forward(self, F: Any, x: Any) -> Any:
        return self.run(normalised(F, x, self.spec.input), with_aux=False)

    def run(self, x: Any, with_aux: bool) -> Any:
        """The stages in order; with `with_aux`, also the auxiliary heads at their taps."""
        if self._outputs and not with_aux:
            features, last = {}, max(self._stages.index(name) for name in self._outputs)
            for name in self._stages[:last + 1]:
                x = features[name] = getattr(self, name)(x)
            # a stage's output that a later stage reads is given as a copy: oneDNN's graph passes (the inference
            # graph, INT8) fuse an operator into the next without counting the graph's outputs among its readers,
            # which gave wrong values or a failed pass in MXNet 1.9.1 (tests/test_outputs.py)
            return tuple(features[name] if self._stages.index(name) == last else _copy(features[name])
                         for name in self._outputs)
        outputs = {}
        for name in self._stages:
            stage = getattr(self, name)
            if not with_aux or not any(s == name for s, _ in self._taps):
                x = stage(x)
                continue
            for i, layer in enumerate(stage):
                x = layer(x)
                for head in self._taps.get((name, i), []):
                    outputs[head] = getattr(self, head)(x)
            for head in self._taps.get((name, None), []):
                outputs[head] = getattr(self, head)(x)
        return (x, *(outputs[h] for h in self._aux)) if with_aux else x


def _copy(x: Any) -> Any:
    """A copy of `x` (a numpy-mode array or symbol): in a graph, an operator of its own."""
    from mxnet import symbol

    return symbol.np.copy(x) if isinstance(x, symbol.Symbol) else x.copy()


class _View(QuietUnusedParameters):
    """Another graph over a `Network`'s own blocks and parameters: its training graph that also returns the
    auxiliary heads (`with_aux`), or its inference graph traced inside `folding()`, batch norms folded (`fold`)."""

    def __init__(self, net: Network, with_aux: bool = False, fold: bool = False):
        super().__init__()
        object.__setattr__(self, "_net", net)
        self._with_aux, self._fold = with_aux, fold

    def collect_params(self, select: Any = None) -> Any:
        return self._net.collect_params(select)

    def hybrid_forward(self, F: Any, x: Any) -> Any:
        with folding() if self._fold else nullcontext():
            return self._net.run(normalised(F, x, self._net.spec.input), with_aux=self._with_aux)


def normalised(F: Any, x: Any, spec_input: Any) -> Any:
    """`(x - mean) / std` per channel when the spec declares them (`input.mean`, `input.std`), in the graph, so
    training, evaluation, prediction and every export apply the same normalisation. Classic operators with
    scalars (slice_axis, minus/divide by a scalar, Concat), whose ONNX converters in MXNet 1.9 give valid
    ONNX (its SliceChannel converter does not for opset 18)."""
    mean, std = spec_input.mean, spec_input.std
    if mean is None:
        return x
    x = x.as_nd_ndarray()
    parts = [(F.slice_axis(x, axis=1, begin=c, end=c + 1) - m) / s for c, (m, s) in enumerate(zip(mean, std))]
    return F.Concat(*parts, dim=1).as_np_ndarray()
