"""The Gluon constructor of every built-in layer kind, registered with its kind.

A constructor takes the validated layer, the shape it receives (from the analysis) and the Gluon blocks
already built for its child sequences (composite kinds only), and returns a Gluon block. A user's kind
brings its constructor as its own `gluon` method instead, so one `register` call adds the whole kind.
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

from mxnet.gluon import nn

from ..spec import kinds
from ..spec.kinds import Layer, Shape, pair
from ..spec.walk import measure
from .modules import HardSigmoid, LayerScale, LRNBlock, Pad, ParallelBlock, ReLU6, Scale, Upsample
from .rewrites import ConvBatchNorm

Children = Sequence[Optional[nn.HybridSequential]]  # one per child sequence; None for an empty one
Constructor = Callable[[Any, Shape, Children], nn.HybridBlock]
CONSTRUCTORS: dict[type[Layer], Constructor] = {}

# Activations Gluon fuses into Conv2D / Dense (`activation=`); the others are blocks of their own.
_FUSABLE = ("relu", "sigmoid", "tanh", "softrelu", "softsign")


def constructs(kind: type[Layer]) -> Callable[[Constructor], Constructor]:
    """Decorator: the Gluon constructor of `kind` (and of its subclasses that define no `gluon`)."""
    def register(constructor: Constructor) -> Constructor:
        CONSTRUCTORS[kind] = constructor
        return constructor
    return register


def construct(layer: Layer, shape: Shape, children: Children) -> nn.HybridBlock:
    """The Gluon block of `layer`: the nearest constructor up its class hierarchy (a kind's own `gluon` method
    or one registered for it here), so a user's subclass of a built-in kind builds as its parent does."""
    for cls in type(layer).__mro__:
        if cls in CONSTRUCTORS:
            return CONSTRUCTORS[cls](layer, shape, children)
        if "gluon" in cls.__dict__:  # a user's kind (Layer's own `gluon` raises: no constructor)
            return layer.gluon(shape, children) if layer.sequences() else layer.gluon(shape)
    raise TypeError(f"{type(layer).__name__} is not a layer kind")


def activation(name: str, shape: Shape = ()) -> nn.HybridBlock:
    """The block of an activation: Gluon's own, archspec's, or a registered kind's (built on `shape`)."""
    if name in _FUSABLE:
        return nn.Activation(name)
    own = {"gelu": nn.GELU, "swish": nn.Swish, "relu6": ReLU6, "hard_sigmoid": HardSigmoid,
           "hard_swish": lambda: HardSigmoid(swish=True)}
    if name in own:
        return own[name]()
    return construct(kinds.REGISTRY[name](), shape, [])


@constructs(kinds.Conv)
def conv(layer: kinds.Conv, shape: Shape, children: Children) -> nn.HybridBlock:
    bn = layer.bn_options
    fused = layer.activation in _FUSABLE and not bn
    top, bottom, left, right = sides = layer.sides(shape)
    even = top == bottom and left == right  # Conv2D pads both sides alike; other padding is a block before it
    block = nn.Conv2D(layer.channels, pair(layer.kernel), pair(layer.stride), (top, left) if even else (0, 0),
                      pair(layer.dilation), layer.groups, in_channels=shape[0], use_bias=layer.bias,
                      activation=layer.activation if fused else None)
    if even and (fused or (layer.activation is None and not bn)):
        return block
    seq = ConvBatchNorm() if bn and even else nn.HybridSequential()  # the first can be folded (gluon.rewrites)
    if not even:
        seq.add(Pad(sides))
    seq.add(block)
    if bn:
        seq.add(nn.BatchNorm(momentum=bn.momentum, epsilon=bn.epsilon, in_channels=layer.channels))
    if layer.activation:
        seq.add(activation(layer.activation, layer.infer(shape)))
    return seq


@constructs(kinds.ConvTranspose)
def conv_transpose(layer: kinds.ConvTranspose, shape: Shape, children: Children) -> nn.HybridBlock:
    return nn.Conv2DTranspose(layer.channels, pair(layer.kernel), pair(layer.stride), pair(layer.padding),
                              pair(layer.output_padding), pair(layer.dilation), layer.groups,
                              use_bias=layer.bias, in_channels=shape[0])


def _pool_options(layer: kinds._Pool) -> dict[str, Any]:
    return dict(pool_size=pair(layer.kernel), padding=pair(layer.padding), ceil_mode=layer.ceil_mode,
                strides=pair(layer.stride) if layer.stride is not None else None)


@constructs(kinds.MaxPool)
def maxpool(layer: kinds.MaxPool, shape: Shape, children: Children) -> nn.HybridBlock:
    return nn.MaxPool2D(**_pool_options(layer))


@constructs(kinds.AvgPool)
def avgpool(layer: kinds.AvgPool, shape: Shape, children: Children) -> nn.HybridBlock:
    return nn.AvgPool2D(count_include_pad=layer.count_include_pad, **_pool_options(layer))


@constructs(kinds.GlobalAvgPool)
def global_avg_pool(layer: kinds.GlobalAvgPool, shape: Shape, children: Children) -> nn.HybridBlock:
    return nn.GlobalAvgPool2D()


@constructs(kinds.GlobalMaxPool)
def global_max_pool(layer: kinds.GlobalMaxPool, shape: Shape, children: Children) -> nn.HybridBlock:
    return nn.GlobalMaxPool2D()


@constructs(kinds.Dense)
def dense(layer: kinds.Dense, shape: Shape, children: Children) -> nn.HybridBlock:
    fused = layer.activation in _FUSABLE or layer.activation is None
    block = nn.Dense(layer.units, layer.activation if fused else None, use_bias=layer.bias, flatten=layer.flatten,
                     in_units=layer.in_units(shape))
    if fused:
        return block
    seq = nn.HybridSequential()
    seq.add(block, activation(str(layer.activation), layer.infer(shape)))
    return seq


@constructs(kinds.Flatten)
def flatten(layer: kinds.Flatten, shape: Shape, children: Children) -> nn.HybridBlock:
    return nn.Flatten()


@constructs(kinds.Dropout)
def dropout(layer: kinds.Dropout, shape: Shape, children: Children) -> nn.HybridBlock:
    return nn.Dropout(layer.rate)


@constructs(kinds.DropPath)
def drop_path(layer: kinds.DropPath, shape: Shape, children: Children) -> nn.HybridBlock:
    # one draw per example: the mask is shared over every axis but the batch axis
    return nn.Dropout(layer.rate, axes=tuple(range(1, len(shape) + 1)))


@constructs(kinds.BatchNorm)
def batchnorm(layer: kinds.BatchNorm, shape: Shape, children: Children) -> nn.HybridBlock:
    return nn.BatchNorm(momentum=layer.momentum, epsilon=layer.epsilon, in_channels=shape[0])


@constructs(kinds.ActivationLayer)
def activation_layer(layer: kinds.ActivationLayer, shape: Shape, children: Children) -> nn.HybridBlock:
    return activation(layer.function, shape)


@constructs(kinds.Gelu)
def gelu(layer: kinds.Gelu, shape: Shape, children: Children) -> nn.HybridBlock:
    return activation("gelu")


@constructs(kinds.Scale)
def scale(layer: kinds.Scale, shape: Shape, children: Children) -> nn.HybridBlock:
    return Scale(layer.value)


@constructs(kinds.LayerScale)
def layer_scale(layer: kinds.LayerScale, shape: Shape, children: Children) -> nn.HybridBlock:
    return LayerScale(shape[0], layer.init, len(shape))


@constructs(kinds.LayerNorm)
def layernorm(layer: kinds.LayerNorm, shape: Shape, children: Children) -> nn.HybridBlock:
    return nn.LayerNorm(axis=1, epsilon=layer.epsilon, in_channels=shape[0])


@constructs(kinds.LRN)
def lrn(layer: kinds.LRN, shape: Shape, children: Children) -> nn.HybridBlock:
    return LRNBlock(layer.size, layer.alpha, layer.beta, layer.k)


@constructs(kinds.Upsample)
def upsample(layer: kinds.Upsample, shape: Shape, children: Children) -> nn.HybridBlock:
    out = layer.infer(shape)
    return Upsample((out[1], out[2]), out[1] // shape[1], layer.mode, layer.align_corners)


@constructs(kinds.Sequential)
def sequential(layer: kinds.Sequential, shape: Shape, children: Children) -> nn.HybridBlock:
    (layers,) = children
    return layers if layers is not None else nn.HybridSequential()


@constructs(kinds.Parallel)
def parallel(layer: kinds.Parallel, shape: Shape, children: Children) -> nn.HybridBlock:
    windows, same_shapes = None, False
    if layer.crop is not None or layer.merge == "add":  # each branch's output shape, as the analysis measured it
        outs = [_through(branch, shape) for _, branch in layer.sequences()]
        windows = layer.windows(outs) if layer.crop is not None else None
        same_shapes = windows is None and len(set(outs)) == 1
    return ParallelBlock([(name, child) for (name, _), child in zip(layer.sequences(), children)], layer.merge,
                         windows, same_shapes=same_shapes)


def _through(layers: Sequence[Layer], shape: Shape) -> Shape:
    """The shape `layers` give on `shape`."""
    for layer in layers:
        shape = measure(layer, shape).output
    return shape
