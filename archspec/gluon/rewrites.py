"""Graph rewrites that keep the parameters in the spec's layout.

Each rewrite changes how a built network computes, never what it stores: the arrays, their names and shapes
stay as the spec makes them, so checkpoints, converted weights and the seed's weights load the same into a
network built with or without them. Each is switchable (`build_model(rewrites=...)`, `--rewrites`):

- `fuse-siblings`: convolutions that read a `parallel`'s input with the same kernel, stride, padding, dilation
  and no groups (Inception's 1x1s; not D2L's ResNeXt block, whose projection alone has the stride) run as one
  convolution whose weight is the concatenation of theirs, made inside the graph, and whose output is split back
  to the branches. In training too: the gradient of the concatenation hands each array its own part.
- `fold-batchnorm`: in the inference graph (`for_inference`, `export`), a batch norm after a convolution is
  folded into it (weight x gamma / sqrt(var + eps), and the shift into the bias), computed from the arrays inside
  the graph. Training is untouched.
- `onednn`: fp32 inference through MXNet's oneDNN subgraph backend (`MKLDNN`), which fuses convolution, batch norm,
  ReLU and sums; on copies of the weights made when the inference block is (`precision.for_inference`), and the
  network itself under `autograd.record` (the fused operators have no gradient).

`onednn` is on by default, where the network lives on the CPU: it measured 0.98-5.5x the plain build's inference
at batch 32 and 1.03-5.8x at batch 1 on the zoo's six benchmarked networks (MobileNetV2 5.5x: its ReLU6, a
`clip`, has no oneDNN kernel of its own in MXNet 1.9.1 and is fused into the convolution there). The other two
are off: fuse-siblings measured 0.93-0.98x in training, and fold-batchnorm is what oneDNN's graph does anyway
(bench/rewrites.py; bench/results/rewrites.md).
"""
from __future__ import annotations

import contextlib
import contextvars
from dataclasses import dataclass, fields
from typing import Any, Iterator, Optional, Sequence

from mxnet.gluon import nn

from ..spec.diagnostics import InputError

NAMES = {"fuse-siblings": "fuse_siblings", "fold-batchnorm": "fold_batchnorm", "onednn": "onednn"}


@dataclass(frozen=True)
class Rewrites:
    """Which rewrites a built network uses. The defaults are the ones measured faster
    (bench/rewrites.py; bench/results/rewrites.md): onednn."""
    fuse_siblings: bool = False
    fold_batchnorm: bool = False
    onednn: bool = True

    @classmethod
    def parse(cls, text: Optional[str]) -> Rewrites:
        """`--rewrites`: `default`, `none`, `all`, or names joined by commas (`fuse-siblings,fold-batchnorm`)."""
        if text is None or text.strip() == "default":
            return cls()
        words = [w.strip() for w in text.split(",") if w.strip()]
        if words == ["none"]:
            return cls(**{f.name: False for f in fields(cls)})
        if words == ["all"]:
            return cls(**{f.name: True for f in fields(cls)})
        unknown = [w for w in words if w not in NAMES]
        if unknown or not words:
            raise InputError(f"--rewrites {text}: expected default, none, all or some of {', '.join(NAMES)}")
        return cls(**{f.name: f.name in {NAMES[w] for w in words} for f in fields(cls)})


_FOLDING = contextvars.ContextVar("archspec_folding", default=False)


@contextlib.contextmanager
def folding() -> Iterator[None]:
    """While a graph is traced (or run imperatively) inside this, batch norms after convolutions are folded."""
    token = _FOLDING.set(True)
    try:
        yield
    finally:
        _FOLDING.reset(token)


def _array(F: Any, param: Any, x: Any) -> Any:
    """A parameter as a classic operand of the graph being made: its variable when tracing, else its array on
    x's device (with its gradient, under autograd)."""
    from mxnet import symbol

    return (param.var() if isinstance(x, symbol.Symbol) else param.data(x.ctx)).as_nd_ndarray()


class ConvBatchNorm(nn.HybridSequential):
    """A convolution, its batch norm and activation (the children `0`, `1`, `2`, as a HybridSequential names
    them, so the parameters' paths are a plain sequence's). Inside `folding()` the batch norm is folded."""

    def hybrid_forward(self, F: Any, x: Any) -> Any:
        if not (_FOLDING.get() and foldable(self)):
            return super().hybrid_forward(F, x)
        weight, bias, options = affine(F, self, x)
        return after(self, convolution(F, x, weight, bias, options))


def foldable(block: Any) -> bool:
    """A convolution that `affine` reads: a plain Conv2D, or a ConvBatchNorm (a Conv2D and a BatchNorm over the
    channels that learns its scale)."""
    if isinstance(block, ConvBatchNorm):
        bn = block[1]
        return type(block[0]) is nn.Conv2D and isinstance(bn, nn.BatchNorm) and not bn._kwargs["fix_gamma"] \
            and bn._kwargs["axis"] == 1
    return type(block) is nn.Conv2D


def affine(F: Any, block: Any, x: Any) -> tuple[Any, Any, dict[str, Any]]:
    """(weight, bias or None, Convolution's options) of a `foldable` block, folded with its batch norm inside
    `folding()`. The operations after it are `after(block, ...)`'s."""
    conv = block[0] if isinstance(block, ConvBatchNorm) else block
    options = dict(conv._kwargs)
    weight = _array(F, conv.weight, x)
    bias = None if conv.bias is None else _array(F, conv.bias, x)
    if not (isinstance(block, ConvBatchNorm) and _FOLDING.get()):
        return weight, bias, options
    bn = block[1]
    gamma, beta, mean, var = (_array(F, p, x) for p in (bn.gamma, bn.beta, bn.running_mean, bn.running_var))
    scale = F.broadcast_div(gamma, F.sqrt(var + bn._kwargs["eps"]))  # operators MXNet's ONNX export knows
    weight = F.broadcast_mul(weight, F.reshape(scale, shape=(-1, 1, 1, 1)))
    shift = beta - mean * scale if bias is None else beta + (bias - mean) * scale
    options["no_bias"] = False
    return weight, shift, options


def after(block: Any, y: Any) -> Any:
    """What follows the convolution of a `foldable` block: its activation (and batch norm unless folded)."""
    if not isinstance(block, ConvBatchNorm):
        return block.act(y) if block.act is not None else y
    for k in range(2 if _FOLDING.get() else 1, len(block)):
        y = block[k](y)
    return y


def convolution(F: Any, x: Any, weight: Any, bias: Any, options: dict[str, Any]) -> Any:
    """Classic Convolution (the operator Conv2D runs) of a numpy-mode input, to a numpy-mode output."""
    operands = [x.as_nd_ndarray(), weight] + ([] if bias is None else [bias])
    return F.Convolution(*operands, **{**options, "no_bias": bias is None}).as_np_ndarray()


def sibling_groups(firsts: Sequence[Any]) -> list[list[int]]:
    """The indices of branches whose first blocks can run as one convolution: `foldable`, no groups, and the same
    kernel, stride, padding, dilation and bias; groups of two or more."""
    groups: dict[tuple[Any, ...], list[int]] = {}
    for i, block in enumerate(firsts):
        if block is None or not foldable(block):
            continue
        o = (block[0] if isinstance(block, ConvBatchNorm) else block)._kwargs
        if o["num_group"] != 1 or o.get("layout", "NCHW") != "NCHW":
            continue
        key = (o["kernel"], o["stride"], o["pad"], o["dilate"], o["no_bias"])
        groups.setdefault(key, []).append(i)
    return [g for g in groups.values() if len(g) > 1]


def fused(F: Any, x: Any, blocks: Sequence[Any]) -> list[Any]:
    """The outputs of `blocks` (one `sibling_groups` group) on `x`, from one convolution over their weights
    concatenated along the output channels inside the graph."""
    parts = [affine(F, block, x) for block in blocks]
    weight = F.Concat(*(w for w, _, _ in parts), dim=0)
    bias = None if parts[0][1] is None else F.Concat(*(b for _, b, _ in parts), dim=0)
    widths = [int(o["num_filter"]) for _, _, o in parts]
    y = convolution(F, x, weight, bias, {**parts[0][2], "num_filter": sum(widths)}).as_nd_ndarray()
    starts = [sum(widths[:k]) for k in range(len(widths))]
    return [after(block, F.slice_axis(y, axis=1, begin=s, end=s + w).as_np_ndarray())
            for block, s, w in zip(blocks, starts, widths)]


def apply(net: Any, rewrites: Rewrites) -> None:
    """Switch `net`'s build-time rewrites on (`fuse-siblings`); the others act where inference blocks are made."""
    net.rewrites = rewrites
    net.apply(lambda block: block.fuse_siblings(rewrites.fuse_siblings) if hasattr(block, "fuse_siblings")
              else None)
