"""Layer kinds. Each kind is one Pydantic model carrying, side by side, its fields, its shape rule,
its parameter and MAC count, and its Gluon constructor (MXNet is imported only inside `block`).

A *layer* (`Layer`) is something the analyser and the builder understand. A *macro* (`Macro`) is
sugar that validates its own fields and then expands into an ordinary layer entry: `inception` is a
macro for a `parallel` whose branches are concatenated.

Add a kind by subclassing `Layer` (or `Macro`) with a `kind` name and decorating it with `@register`;
users do the same from their own code through `archspec.register`.
"""
from __future__ import annotations

import math
from typing import Annotated, Any, Callable, ClassVar, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, InstanceOf, PrivateAttr, Strict, WithJsonSchema, model_validator

Shape = tuple[int, ...]  # without the batch axis: (C, H, W) for images, (N,) for vectors

# ---------------------------------------------------------------------------------------------
# Field types shared by the kinds: strict integers, so `channels: 64.5` or `"64"` is an error.
Size = Annotated[int, Strict(), Field(ge=1)]
NonNegative = Annotated[int, Strict(), Field(ge=0)]
Pair = Union[Size, Annotated[tuple[Size, Size], Field(min_length=2, max_length=2)]]
PairOrZero = Union[NonNegative, Annotated[tuple[NonNegative, NonNegative], Field(min_length=2, max_length=2)]]
Flag = Annotated[bool, Strict()]

Activation = Literal["relu", "sigmoid", "tanh", "softrelu", "softsign", "gelu", "swish"]
_GLUON_BUILTIN_ACTIVATIONS = ("relu", "sigmoid", "tanh", "softrelu", "softsign")


def pair(value: int | tuple[int, int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


class ShapeError(ValueError):
    """A layer cannot take the shape it is given; the analyser adds the YAML location."""


REGISTRY: dict[str, type] = {}


def register(cls):
    """Class decorator: make a `Layer` or `Macro` subclass available in specs under `cls.kind`."""
    if not (isinstance(cls, type) and issubclass(cls, (Layer, Macro))):
        raise TypeError("register() takes a subclass of archspec.Layer or archspec.Macro")
    kind = getattr(cls, "kind", None)
    if not isinstance(kind, str) or not kind.isidentifier():
        raise TypeError(f"{cls.__name__}.kind must be an identifier, got {kind!r}")
    if kind in REGISTRY and REGISTRY[kind] is not cls:
        raise ValueError(f"a layer kind named {kind!r} is already registered ({REGISTRY[kind].__name__})")
    REGISTRY[kind] = cls
    return cls


class _Kind(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: ClassVar[str]
    #: a scalar body fills this field: `- dropout: 0.5`, `- activation: relu`
    shorthand: ClassVar[str | None] = None
    #: fields that hold layer entries, and how deeply nested: 1 = a list of entries, 2 = a list of lists
    children: ClassVar[dict[str, int]] = {}
    #: channel counts that a spec's `width` multiplier scales
    width_fields: ClassVar[tuple[str, ...]] = ()

    # Where the entry was written; set by the validator, read by the analyser for error messages.
    _mark: Any = PrivateAttr(default=None)
    _source: tuple = PrivateAttr(default=())


class Layer(_Kind):
    """A layer the analyser and the builder understand. Leaf kinds override `infer`, the counts and
    `block`; composite kinds override `trace` and `gluon` to walk their children."""

    def infer(self, shape: Shape) -> Shape:
        raise NotImplementedError

    def params(self, shape: Shape, out: Shape) -> int:
        """Trainable parameters."""
        return 0

    def state(self, shape: Shape, out: Shape) -> int:
        """Non-trainable state (e.g. batch-norm running statistics)."""
        return 0

    def macs(self, shape: Shape, out: Shape) -> int:
        """Multiply-accumulates per example."""
        return 0

    def block(self, shape: Shape):
        """The Gluon block for an input of `shape`."""
        raise NotImplementedError

    def trace(self, shape: Shape, walk: Callable) -> Shape:
        """Output shape. Composite kinds call `walk(layers, shape, name)` for each child sequence."""
        return self.infer(shape)

    def gluon(self, shape: Shape, build: Callable):
        """Gluon block. Composite kinds call `build(layers, shape)` for each child sequence."""
        return self.block(shape)

    def display(self) -> str:
        return self.kind


class Macro(_Kind):
    """Sugar: validated like a layer, then replaced by the layer entry `expand()` returns."""

    def expand(self) -> dict:
        raise NotImplementedError


def _need_image(kind: str, shape: Shape) -> tuple[int, int, int]:
    if len(shape) != 3:
        raise ShapeError(f"{kind} needs a (channels, height, width) input, got {_fmt(shape)}")
    return shape


def _fmt(shape: Shape) -> str:
    return "x".join(map(str, shape))


def _window(size: int, kernel: int, stride: int, padding: int, dilation: int = 1, ceil: bool = False) -> int:
    """Output length of a sliding window, as MXNet's convolution and pooling compute it."""
    span = dilation * (kernel - 1) + 1
    if span > size + 2 * padding:
        raise ShapeError(f"kernel {span} is larger than the padded input {size}+2x{padding}")
    steps = (size + 2 * padding - span) / stride
    return (math.ceil(steps) if ceil else math.floor(steps)) + 1


def _activation_block(name: str):
    from mxnet.gluon import nn

    if name in _GLUON_BUILTIN_ACTIVATIONS:
        return nn.Activation(name)
    return {"gelu": nn.GELU, "swish": nn.Swish}[name]()


# ---------------------------------------------------------------------------------------------
# Convolution


class BatchNormOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    epsilon: float = Field(1e-5, gt=0, description="Added to the variance for numerical stability.")
    momentum: float = Field(0.9, ge=0, le=1, description="Running-statistics momentum.")


@register
class Conv(Layer):
    """2-D convolution (`nn.Conv2D`), optionally followed by batch norm and an activation."""

    kind: ClassVar[str] = "conv"
    width_fields: ClassVar[tuple[str, ...]] = ("channels",)
    channels: Size = Field(description="Output channels.")
    kernel: Pair = Field(description="Kernel size: an integer or [height, width].")
    stride: Pair = Field(1, description="Stride: an integer or [height, width].")
    padding: PairOrZero = Field(0, description="Zero padding on each side: an integer or [height, width].")
    dilation: Pair = Field(1, description="Dilation: an integer or [height, width].")
    groups: Size = Field(1, description="Groups; set it to the input channels for a depthwise convolution.")
    activation: Activation | None = Field(None, description="Activation after the convolution (and batch norm).")
    bias: Flag = Field(True, description="Learn a bias (usually off when batch norm follows).")
    batchnorm: Union[Flag, BatchNormOptions] = Field(
        False, description="Batch norm between convolution and activation: true, or {epsilon, momentum}.")

    @model_validator(mode="after")
    def _groups_divide_channels(self):
        if self.channels % self.groups:
            raise ValueError(f"channels ({self.channels}) must be divisible by groups ({self.groups})")
        return self

    @property
    def _bn(self) -> BatchNormOptions | None:
        if self.batchnorm is True:
            return BatchNormOptions()
        return self.batchnorm or None

    def infer(self, shape):
        c, h, w = _need_image(self.kind, shape)
        if c % self.groups:
            raise ShapeError(f"input channels ({c}) must be divisible by groups ({self.groups})")
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = map(pair, (self.kernel, self.stride, self.padding, self.dilation))
        return (self.channels, _window(h, kh, sh, ph, dh), _window(w, kw, sw, pw, dw))

    def _weights(self, shape) -> int:
        kh, kw = pair(self.kernel)
        return self.channels * (shape[0] // self.groups) * kh * kw

    def params(self, shape, out):
        return self._weights(shape) + self.channels * (self.bias + 2 * bool(self._bn))

    def state(self, shape, out):
        return 2 * self.channels if self._bn else 0

    def macs(self, shape, out):
        return self._weights(shape) * out[1] * out[2]

    def block(self, shape):
        from mxnet.gluon import nn

        fused = self.activation in _GLUON_BUILTIN_ACTIVATIONS and not self._bn
        conv = nn.Conv2D(self.channels, pair(self.kernel), pair(self.stride), pair(self.padding),
                         pair(self.dilation), self.groups, in_channels=shape[0], use_bias=self.bias,
                         activation=self.activation if fused else None)
        if fused or (self.activation is None and not self._bn):
            return conv
        seq = nn.HybridSequential()
        seq.add(conv)
        if self._bn:
            seq.add(nn.BatchNorm(momentum=self._bn.momentum, epsilon=self._bn.epsilon, in_channels=self.channels))
        if self.activation:
            seq.add(_activation_block(self.activation))
        return seq


# ---------------------------------------------------------------------------------------------
# Pooling


class _Pool(Layer):
    kernel: Pair = Field(description="Window size: an integer or [height, width].")
    stride: Pair | None = Field(None, description="Stride; defaults to the window size, as in Gluon.")
    padding: PairOrZero = Field(0, description="Padding on each side: an integer or [height, width].")
    ceil_mode: Flag = Field(False, description="Round the output size up instead of down.")

    @model_validator(mode="after")
    def _padding_within_window(self):
        if any(p >= k for p, k in zip(pair(self.padding), pair(self.kernel))):
            raise ValueError(f"padding {self.padding} must be smaller than the window {self.kernel} "
                             "(MXNet pools only windows that overlap the input)")
        return self

    def infer(self, shape):
        c, h, w = _need_image(self.kind, shape)
        (kh, kw), (ph, pw) = pair(self.kernel), pair(self.padding)
        sh, sw = pair(self.stride if self.stride is not None else self.kernel)
        return (c, _window(h, kh, sh, ph, ceil=self.ceil_mode), _window(w, kw, sw, pw, ceil=self.ceil_mode))

    def _options(self) -> dict:
        return dict(pool_size=pair(self.kernel), padding=pair(self.padding), ceil_mode=self.ceil_mode,
                    strides=pair(self.stride) if self.stride is not None else None)


@register
class MaxPool(_Pool):
    """Max pooling (`nn.MaxPool2D`)."""

    kind: ClassVar[str] = "maxpool"

    def block(self, shape):
        from mxnet.gluon import nn

        return nn.MaxPool2D(**self._options())


@register
class AvgPool(_Pool):
    """Average pooling (`nn.AvgPool2D`)."""

    kind: ClassVar[str] = "avgpool"
    count_include_pad: Flag = Field(True, description="Count padded zeros in the average, as Gluon does.")

    def block(self, shape):
        from mxnet.gluon import nn

        return nn.AvgPool2D(count_include_pad=self.count_include_pad, **self._options())


class _GlobalPool(Layer):
    def infer(self, shape):
        c, _, _ = _need_image(self.kind, shape)
        return (c, 1, 1)


@register
class GlobalAvgPool(_GlobalPool):
    """Average over all positions: (C, H, W) -> (C, 1, 1) (`nn.GlobalAvgPool2D`)."""

    kind: ClassVar[str] = "global_avg_pool"

    def block(self, shape):
        from mxnet.gluon import nn

        return nn.GlobalAvgPool2D()


@register
class GlobalMaxPool(_GlobalPool):
    """Maximum over all positions: (C, H, W) -> (C, 1, 1) (`nn.GlobalMaxPool2D`)."""

    kind: ClassVar[str] = "global_max_pool"

    def block(self, shape):
        from mxnet.gluon import nn

        return nn.GlobalMaxPool2D()


# ---------------------------------------------------------------------------------------------
# Dense and friends


@register
class Dense(Layer):
    """Fully connected layer (`nn.Dense`)."""

    kind: ClassVar[str] = "dense"
    shorthand: ClassVar[str] = "units"
    units: Size = Field(description="Output units.")
    activation: Activation | None = Field(None, description="Activation after the layer.")
    bias: Flag = Field(True, description="Learn a bias.")
    flatten: Flag = Field(True, description="Flatten all input axes but the batch axis first, as Gluon does; "
                                            "false applies the layer to the last axis.")

    def _inputs(self, shape) -> int:
        return math.prod(shape) if self.flatten else shape[-1]

    def infer(self, shape):
        return (self.units,) if self.flatten else shape[:-1] + (self.units,)

    def params(self, shape, out):
        return (self._inputs(shape) + self.bias) * self.units

    def macs(self, shape, out):
        return math.prod(out) * self._inputs(shape)

    def block(self, shape):
        from mxnet.gluon import nn

        if self.activation in _GLUON_BUILTIN_ACTIVATIONS or self.activation is None:
            return nn.Dense(self.units, self.activation, use_bias=self.bias, flatten=self.flatten,
                            in_units=self._inputs(shape))
        seq = nn.HybridSequential()
        seq.add(nn.Dense(self.units, use_bias=self.bias, flatten=self.flatten, in_units=self._inputs(shape)),
                _activation_block(self.activation))
        return seq


@register
class Flatten(Layer):
    """Flatten all axes but the batch axis (`nn.Flatten`)."""

    kind: ClassVar[str] = "flatten"

    def infer(self, shape):
        return (math.prod(shape),)

    def block(self, shape):
        from mxnet.gluon import nn

        return nn.Flatten()


@register
class Dropout(Layer):
    """Dropout while training (`nn.Dropout`)."""

    kind: ClassVar[str] = "dropout"
    shorthand: ClassVar[str] = "rate"
    rate: float = Field(ge=0, lt=1, description="Fraction of activations dropped while training.")

    def infer(self, shape):
        return shape

    def block(self, shape):
        from mxnet.gluon import nn

        return nn.Dropout(self.rate)


@register
class BatchNorm(Layer, BatchNormOptions):
    """Batch normalisation over the channel axis (`nn.BatchNorm`)."""

    kind: ClassVar[str] = "batchnorm"

    def infer(self, shape):
        return shape

    def params(self, shape, out):
        return 2 * shape[0]

    def state(self, shape, out):
        return 2 * shape[0]

    def block(self, shape):
        from mxnet.gluon import nn

        return nn.BatchNorm(momentum=self.momentum, epsilon=self.epsilon, in_channels=shape[0])


@register
class ActivationLayer(Layer):
    """An activation on its own (`nn.Activation`, `nn.GELU`, `nn.Swish`)."""

    kind: ClassVar[str] = "activation"
    shorthand: ClassVar[str] = "function"
    function: Activation = Field(description="The activation function.")

    def infer(self, shape):
        return shape

    def block(self, shape):
        return _activation_block(self.function)


@register
class LRN(Layer):
    """Local response normalisation across channels (Krizhevsky et al., 2012), as the original GoogLeNet uses."""

    kind: ClassVar[str] = "lrn"
    size: Size = Field(5, description="Number of neighbouring channels (odd).")
    alpha: float = Field(1e-4, gt=0, description="Scale.")
    beta: float = Field(0.75, gt=0, description="Exponent.")
    k: float = Field(2.0, gt=0, description="Additive constant (Gluon's `knorm`; Caffe uses 1).")

    @model_validator(mode="after")
    def _odd(self):
        if self.size % 2 == 0:
            raise ValueError(f"size must be odd, got {self.size}")
        return self

    def infer(self, shape):
        _need_image(self.kind, shape)
        return shape

    def block(self, shape):
        from .blocks import LRNBlock

        return LRNBlock(self.size, self.alpha, self.beta, self.k)


# ---------------------------------------------------------------------------------------------
# Composition: sequences and parallel branches

# Validated layers; in the JSON Schema, a list of layer entries as a user writes them.
Layers = Annotated[tuple[InstanceOf[Layer], ...],
                   WithJsonSchema({"type": "array", "items": {"x-layer-entry": True}})]


@register
class Sequential(Layer):
    """Layers applied one after another (a `HybridSequential`), e.g. a reusable block's expansion."""

    kind: ClassVar[str] = "sequential"
    children: ClassVar[dict[str, int]] = {"layers": 1}
    layers: Layers = Field(description="The layers, in order.")
    label: str | None = Field(None, description="Shown in summaries and diagrams instead of `sequential`.")

    def trace(self, shape, walk):
        return walk(self.layers, shape, None)

    def gluon(self, shape, build):
        return build(self.layers, shape)

    def display(self) -> str:
        return self.label or self.kind


def _broadcast(shapes: list[Shape]) -> Shape:
    rank = len(shapes[0])
    if any(len(s) != rank for s in shapes):
        raise ShapeError("cannot combine branches of shapes " + ", ".join(map(_fmt, shapes)))
    out = []
    for dims in zip(*shapes):
        sizes = set(dims) - {1}
        if len(sizes) > 1:
            raise ShapeError("branch shapes " + ", ".join(map(_fmt, shapes)) + " do not match (nor broadcast)")
        out.append(sizes.pop() if sizes else 1)
    return tuple(out)


@register
class Parallel(Layer):
    """Branches applied to the same input and merged: `concat` on channels (Inception, dense blocks),
    `add` (residual), `mul` (gates such as squeeze-and-excitation). An empty branch is the identity."""

    kind: ClassVar[str] = "parallel"
    children: ClassVar[dict[str, int]] = {"branches": 2}
    branches: tuple[Layers, ...] = Field(min_length=1, description="Branches, each a list of layers; "
                                                                   "[] is the identity.")
    merge: Literal["concat", "add", "mul"] = Field("concat", description="How branch outputs combine: concat "
                                                   "on the channel axis, or elementwise add / mul (broadcasting).")
    label: str | None = Field(None, description="Shown in summaries and diagrams instead of `parallel`.")

    def trace(self, shape, walk):
        outs = [walk(branch, shape, f"branch{i}") for i, branch in enumerate(self.branches, 1)]
        if self.merge != "concat":
            return _broadcast(outs)
        if len({len(s) for s in outs}) > 1 or len({s[1:] for s in outs}) > 1:
            raise ShapeError("concat needs equal spatial sizes; branch outputs are " + ", ".join(map(_fmt, outs)))
        return (sum(s[0] for s in outs),) + outs[0][1:]

    def gluon(self, shape, build):
        from .blocks import ParallelBlock

        return ParallelBlock([build(branch, shape) if branch else None for branch in self.branches], self.merge)

    def display(self) -> str:
        return self.label or f"parallel({self.merge})"


# ---------------------------------------------------------------------------------------------
# Macros

Branch = Annotated[tuple[Size, Size], Field(min_length=2, max_length=2)]


@register
class Inception(Macro):
    """The D2L Inception block: four branches concatenated on channels. Expands to a `parallel`."""

    kind: ClassVar[str] = "inception"
    c1: Size = Field(description="Branch 1: 1x1 convolution channels.")
    c2: Branch = Field(description="Branch 2: [1x1 reduce channels, 3x3 convolution channels].")
    c3: Branch = Field(description="Branch 3: [1x1 reduce channels, 5x5 convolution channels].")
    c4: Size = Field(description="Branch 4: channels of the 1x1 convolution after the 3x3 pool.")
    c3_kernel: Literal[3, 5] = Field(5, description="Kernel of branch 3's second convolution "
                                                    "(torchvision and GluonCV use 3).")
    pool: Literal["maxpool", "avgpool"] = Field("maxpool", description="Branch 4's pooling.")
    activation: Activation | None = Field("relu", description="Activation after every convolution.")

    def expand(self) -> dict:
        def conv(channels, kernel, padding=0):
            return {"conv": {"channels": channels, "kernel": kernel, "padding": padding,
                             "activation": self.activation}}

        return {"parallel": {"label": "inception", "merge": "concat", "branches": [
            [conv(self.c1, 1)],
            [conv(self.c2[0], 1), conv(self.c2[1], 3, 1)],
            [conv(self.c3[0], 1), conv(self.c3[1], self.c3_kernel, self.c3_kernel // 2)],
            [{self.pool: {"kernel": 3, "stride": 1, "padding": 1}}, conv(self.c4, 1)],
        ]}}
