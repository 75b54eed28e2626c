"""Layer kinds. Each kind is one Pydantic model carrying, side by side, its fields and their validation,
its shape rule and its parameter, state and MAC counts. Nothing here imports MXNet: the Gluon
constructor of each built-in kind is registered with it from the backend (`archspec.gluon.layers`),
and a user's kind brings its own in its `gluon` method, so `register` adds a whole kind in one call.

A *layer* (`Layer`) is something the analyser and the builder understand; a composite layer holds
sequences of layers (`sequences()`) and combines their outputs (`combine()`). Composite ideas (Inception,
residual, squeeze-and-excitation, ...) are not kinds but YAML blocks (`library.yaml`).
"""
from __future__ import annotations

import keyword
import math
from typing import Annotated, Any, ClassVar, Literal, Optional, TypeVar, Union

from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, InstanceOf, PrivateAttr, Strict, WithJsonSchema,
                      model_validator)

from .diagnostics import UNKNOWN, FieldPath, Mark
from .tables import format_shape

Shape = tuple[int, ...]  # without the batch axis: (C, H, W) for images, (N,) for vectors


# ---------------------------------------------------------------------------------------------
# Field types shared by the kinds: strict integers, so `channels: 64.5` or `"64"` is an error.
Size = Annotated[int, Strict(), Field(ge=1)]
NonNegative = Annotated[int, Strict(), Field(ge=0)]
Pair = Union[Size, Annotated[tuple[Size, Size], Field(min_length=2, max_length=2)]]
PairOrZero = Union[NonNegative, Annotated[tuple[NonNegative, NonNegative], Field(min_length=2, max_length=2)]]
Flag = Annotated[bool, Strict()]

#: activation functions every conv and dense layer knows; a registered kind with no required field is one too
ACTIVATIONS = ("relu", "sigmoid", "tanh", "softrelu", "softsign", "gelu", "swish", "relu6", "hard_sigmoid",
               "hard_swish")


def _known_activation(name: str) -> str:
    kind = REGISTRY.get(name)
    if name in ACTIVATIONS or (kind is not None and not any(f.is_required() for f in kind.model_fields.values())):
        return name
    from .diagnostics import hint

    raise ValueError(f"unknown activation {name!r}{hint(name, ACTIVATIONS)} (one of "
                     f"{', '.join(map(repr, ACTIVATIONS))}, or a registered kind without required fields)")


Activation = Annotated[str, Strict(), AfterValidator(_known_activation),
                       WithJsonSchema({"anyOf": [{"enum": list(ACTIVATIONS)},
                                                 {"type": "string", "description": "a registered layer kind"}]})]


def pair(value: int | tuple[int, int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (value[0], value[1])


class ShapeError(ValueError):
    """A layer cannot take the shape it is given; the analyser adds the YAML location."""


class ValueKey:
    """A layer's value as a hashable key (`walk.value_key` computes it, once per layer): equal for equal layers
    wherever they are written. Kept with the layer; never tells two layers apart."""

    __slots__ = ("key",)

    def __init__(self) -> None:
        self.key: Any = None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ValueKey)

    __hash__ = None  # type: ignore[assignment]

    def __getstate__(self) -> Any:
        return None  # recomputed where needed

    def __setstate__(self, state: Any) -> None:
        self.key = None


REGISTRY: dict[str, type[Layer]] = {}
#: keys a layer entry or an expanded block holds beside its kind (`- conv: {...}` with `repeat:`, `when:`; a
#: block's `label`, `layers`): a kind of one of these names would make every entry that uses them ambiguous
RESERVED_KINDS = ("repeat", "when", "label", "layers", "args")
K = TypeVar("K", bound="type[Layer]")


def register(cls: K) -> K:
    """Class decorator: make a `Layer` subclass available in specs under `cls.kind` (and, when it has no required
    field, as an `activation:` of conv and dense layers)."""
    if not (isinstance(cls, type) and issubclass(cls, Layer)):
        raise TypeError("register() takes a subclass of archspec.Layer")
    kind = getattr(cls, "kind", None)
    if not isinstance(kind, str) or not kind.isidentifier():
        raise TypeError(f"{cls.__name__}.kind must be an identifier, got {kind!r}")
    if kind in RESERVED_KINDS or keyword.iskeyword(kind):
        raise ValueError(f"{cls.__name__}.kind {kind!r} is a reserved word of specs ({', '.join(RESERVED_KINDS)} "
                         "and Python's keywords); choose another name")
    if kind in REGISTRY and REGISTRY[kind] is not cls:
        raise ValueError(f"a layer kind named {kind!r} is already registered ({REGISTRY[kind].__name__})")
    REGISTRY[kind] = cls
    return cls


class Layer(BaseModel):
    """A layer the analyser and the builder understand.

    A leaf kind overrides `infer` (its shape rule), the counts it has (`params`, `state`, `macs`) and, for
    a kind of your own, `gluon` (its Gluon constructor). A composite kind returns its child sequences from
    `sequences()` and merges their output shapes in `combine()`. `lint` may warn about a valid but useless
    layer. Any hook may raise `ShapeError`; the analyser reports it at the layer's YAML line.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    kind: ClassVar[str]
    #: a scalar body fills this field: `- dropout: 0.5`, `- activation: relu`
    shorthand: ClassVar[str | None] = None
    #: fields that hold layer entries, and how deeply nested: 1 = a list of entries, 2 = a list of lists
    children: ClassVar[dict[str, int]] = {}
    #: channel counts that a spec's `width` multiplier scales
    width_fields: ClassVar[tuple[str, ...]] = ()

    # Where the entry was written; set by the validator, read by the analyser for error messages.
    _mark: Mark = PrivateAttr(default=UNKNOWN)
    _source: FieldPath = PrivateAttr(default=())
    _value_key: ValueKey = PrivateAttr(default_factory=ValueKey)

    def model_copy(self, *, update: Any = None, deep: bool = False) -> Any:
        copied = super().model_copy(update=update, deep=deep)
        copied._value_key = ValueKey()  # the copy's value may differ
        return copied

    def infer(self, shape: Shape) -> Shape:
        """The output shape for an input of `shape` (a leaf's shape rule)."""
        raise NotImplementedError(f"{type(self).__name__} has no shape rule (define infer)")

    def params(self, shape: Shape, out: Shape) -> int:
        """Trainable parameters."""
        return 0

    def state(self, shape: Shape, out: Shape) -> int:
        """Non-trainable state (e.g. batch-norm running statistics)."""
        return 0

    def macs(self, shape: Shape, out: Shape) -> int:
        """Multiply-accumulates per example."""
        return 0

    def activations(self, shape: Shape, out: Shape) -> int:
        """Values this layer itself writes per example (its output; 0 for a layer that only groups others)."""
        return math.prod(out)

    def sequences(self) -> tuple[tuple[str | None, Layers], ...]:
        """The child sequences of a composite layer, each with the name its Gluon child gets (None: none)."""
        return ()

    def combine(self, shape: Shape, outputs: list[Shape]) -> Shape:
        """A composite layer's output shape from its input and its sequences' outputs."""
        return outputs[-1] if outputs else shape

    def lint(self, shape: Shape) -> str | None:
        """Why this layer, valid as it is, does nothing useful on `shape` (a warning), or None."""
        return None

    def gluon(self, shape: Shape, children: Any = ()) -> Any:
        """The Gluon block of a kind of your own for an input of `shape` (import MXNet inside). A composite
        kind also gets the Gluon blocks built for its `sequences()` (None for an empty one)."""
        raise NotImplementedError(f"{type(self).__name__} has no Gluon constructor (define gluon)")

    def display(self) -> str:
        return self.kind


def _need_image(kind: str, shape: Shape) -> tuple[int, int, int]:
    if len(shape) != 3:
        raise ShapeError(f"{kind} needs a (channels, height, width) input, got {format_shape(shape)}")
    return shape[0], shape[1], shape[2]


def _window(size: int, kernel: int, stride: int, padding: int, dilation: int = 1, ceil: bool = False,
            after: Optional[int] = None) -> int:
    """Output length of a sliding window, as MXNet's convolution and pooling compute it: `padding` on both sides,
    or before and `after`."""
    span = dilation * (kernel - 1) + 1
    padded = size + padding + (padding if after is None else after)
    if span > padded:
        pads = f"2x{padding}" if after is None else f"{padding}+{after}"
        raise ShapeError(f"kernel {span} is larger than the padded input {size}+{pads}")
    steps = (padded - span) / stride
    return (math.ceil(steps) if ceil else math.floor(steps)) + 1


# ---------------------------------------------------------------------------------------------
# Convolution


class Sides(BaseModel):
    """Zero padding of each side on its own (PyTorch's `F.pad`, TensorFlow's explicit padding)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    top: NonNegative = Field(0, description="Rows added above.")
    bottom: NonNegative = Field(0, description="Rows added below.")
    left: NonNegative = Field(0, description="Columns added on the left.")
    right: NonNegative = Field(0, description="Columns added on the right.")


def _same(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """Padding before and after that gives ceil(size / stride) outputs (TensorFlow's and PyTorch's `same`: the
    odd one goes after)."""
    total = max((-(-size // stride) - 1) * stride + dilation * (kernel - 1) + 1 - size, 0)
    return total // 2, total - total // 2


class BatchNormOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
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
    padding: Union[PairOrZero, Literal["same"], Sides] = Field(
        0, description="Zero padding on each side: an integer or [height, width]; `same` (ceil(size / stride) "
                       "outputs, the odd row or column below and on the right); or {top, bottom, left, right}.")
    dilation: Pair = Field(1, description="Dilation: an integer or [height, width].")
    groups: Size = Field(1, description="Groups; set it to the input channels for a depthwise convolution.")
    activation: Activation | None = Field(None, description="Activation after the convolution (and batch norm).")
    bias: Flag = Field(True, description="Learn a bias (usually off when batch norm follows).")
    batchnorm: Union[Flag, BatchNormOptions] = Field(
        False, description="Batch norm between convolution and activation: true, or {epsilon, momentum}.")

    @model_validator(mode="after")
    def _groups_divide_channels(self) -> Conv:
        if self.channels % self.groups:
            raise ValueError(f"channels ({self.channels}) must be divisible by groups ({self.groups})")
        return self

    @property
    def bn_options(self) -> BatchNormOptions | None:
        """The batch norm after the convolution, if any."""
        if self.batchnorm is True:
            return BatchNormOptions()
        return self.batchnorm or None

    def infer(self, shape: Shape) -> Shape:
        c, h, w = _need_image(self.kind, shape)
        if c % self.groups:
            raise ShapeError(f"input channels ({c}) must be divisible by groups ({self.groups})")
        (kh, kw), (sh, sw), (dh, dw) = map(pair, (self.kernel, self.stride, self.dilation))
        top, bottom, left, right = self.sides(shape)
        return (self.channels, _window(h, kh, sh, top, dh, after=bottom), _window(w, kw, sw, left, dw, after=right))

    def sides(self, shape: Shape) -> tuple[int, int, int, int]:
        """The padding (top, bottom, left, right) on an input of `shape`."""
        if isinstance(self.padding, Sides):
            return self.padding.top, self.padding.bottom, self.padding.left, self.padding.right
        if self.padding == "same":
            (kh, kw), (sh, sw), (dh, dw) = map(pair, (self.kernel, self.stride, self.dilation))
            return _same(shape[1], kh, sh, dh) + _same(shape[2], kw, sw, dw)
        ph, pw = pair(self.padding)
        return ph, ph, pw, pw

    def _weights(self, shape: Shape) -> int:
        kh, kw = pair(self.kernel)
        return self.channels * (shape[0] // self.groups) * kh * kw

    def params(self, shape: Shape, out: Shape) -> int:
        return self._weights(shape) + self.channels * (self.bias + 2 * bool(self.bn_options))

    def state(self, shape: Shape, out: Shape) -> int:
        return 2 * self.channels if self.bn_options else 0

    def macs(self, shape: Shape, out: Shape) -> int:
        return self._weights(shape) * out[1] * out[2]


@register
class ConvTranspose(Layer):
    """Transposed 2-D convolution (`nn.Conv2DTranspose`, PyTorch's `ConvTranspose2d`), the U-Net paper's
    up-convolution: each side grows to (size - 1) * stride - 2 * padding + dilation * (kernel - 1) +
    output_padding + 1."""

    kind: ClassVar[str] = "conv_transpose"
    width_fields: ClassVar[tuple[str, ...]] = ("channels",)
    channels: Size = Field(description="Output channels.")
    kernel: Pair = Field(description="Kernel size: an integer or [height, width].")
    stride: Pair = Field(1, description="Stride: an integer or [height, width].")
    padding: PairOrZero = Field(0, description="Rows and columns taken off each side: an integer or "
                                               "[height, width].")
    output_padding: PairOrZero = Field(0, description="Added to one side of the output (below the stride or "
                                                      "the dilation), to reach an odd size.")
    dilation: Pair = Field(1, description="Dilation: an integer or [height, width].")
    groups: Size = Field(1, description="Groups; input and output channels must both divide by it.")
    bias: Flag = Field(True, description="Learn a bias.")

    @model_validator(mode="after")
    def _valid(self) -> ConvTranspose:
        if self.channels % self.groups:
            raise ValueError(f"channels ({self.channels}) must be divisible by groups ({self.groups})")
        for o, s, d in zip(pair(self.output_padding), pair(self.stride), pair(self.dilation)):
            if o >= max(s, d):
                raise ValueError(f"output_padding {self.output_padding} must be smaller than the stride "
                                 f"{self.stride} or the dilation {self.dilation}")
        return self

    def infer(self, shape: Shape) -> Shape:
        c, h, w = _need_image(self.kind, shape)
        if c % self.groups:
            raise ShapeError(f"input channels ({c}) must be divisible by groups ({self.groups})")
        sizes = []
        for size, k, s, p, o, d in zip((h, w), *map(pair, (self.kernel, self.stride, self.padding,
                                                          self.output_padding, self.dilation))):
            out = (size - 1) * s - 2 * p + d * (k - 1) + o + 1
            if out < 1:
                raise ShapeError(f"padding {p} leaves no output of an input of {size}")
            sizes.append(out)
        return (self.channels, sizes[0], sizes[1])

    def _weights(self, shape: Shape) -> int:
        kh, kw = pair(self.kernel)
        return shape[0] * (self.channels // self.groups) * kh * kw

    def params(self, shape: Shape, out: Shape) -> int:
        return self._weights(shape) + self.channels * self.bias

    def macs(self, shape: Shape, out: Shape) -> int:
        return self._weights(shape) * shape[1] * shape[2]  # every input value meets its kernel once


# ---------------------------------------------------------------------------------------------
# Pooling


class _Pooling(Layer):
    """Pooling of any kind: on a 1x1 input it does nothing."""

    def lint(self, shape: Shape) -> str | None:
        return f"{self.kind} on a 1x1 input does nothing" if shape[1:] == (1, 1) else None


class _Pool(_Pooling):
    kernel: Pair = Field(description="Window size: an integer or [height, width].")
    stride: Pair | None = Field(None, description="Stride; defaults to the window size, as in Gluon.")
    padding: PairOrZero = Field(0, description="Padding on each side: an integer or [height, width].")
    ceil_mode: Flag = Field(False, description="Round the output size up instead of down.")

    @model_validator(mode="after")
    def _padding_within_window(self) -> _Pool:
        if any(p >= k for p, k in zip(pair(self.padding), pair(self.kernel))):
            raise ValueError(f"padding {self.padding} must be smaller than the window {self.kernel} "
                             "(MXNet pools only windows that overlap the input)")
        return self

    def infer(self, shape: Shape) -> Shape:
        c, h, w = _need_image(self.kind, shape)
        (kh, kw), (ph, pw) = pair(self.kernel), pair(self.padding)
        sh, sw = pair(self.stride if self.stride is not None else self.kernel)
        return (c, _window(h, kh, sh, ph, ceil=self.ceil_mode), _window(w, kw, sw, pw, ceil=self.ceil_mode))


@register
class MaxPool(_Pool):
    """Max pooling (`nn.MaxPool2D`)."""

    kind: ClassVar[str] = "maxpool"


@register
class AvgPool(_Pool):
    """Average pooling (`nn.AvgPool2D`)."""

    kind: ClassVar[str] = "avgpool"
    count_include_pad: Flag = Field(True, description="Count padded zeros in the average, as Gluon does.")


class _GlobalPool(_Pooling):
    def infer(self, shape: Shape) -> Shape:
        c, _, _ = _need_image(self.kind, shape)
        return (c, 1, 1)


@register
class GlobalAvgPool(_GlobalPool):
    """Average over all positions: (C, H, W) -> (C, 1, 1) (`nn.GlobalAvgPool2D`)."""

    kind: ClassVar[str] = "global_avg_pool"


@register
class GlobalMaxPool(_GlobalPool):
    """Maximum over all positions: (C, H, W) -> (C, 1, 1) (`nn.GlobalMaxPool2D`)."""

    kind: ClassVar[str] = "global_max_pool"


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

    def in_units(self, shape: Shape) -> int:
        """Inputs of each unit."""
        return math.prod(shape) if self.flatten else shape[-1]

    def infer(self, shape: Shape) -> Shape:
        return (self.units,) if self.flatten else shape[:-1] + (self.units,)

    def params(self, shape: Shape, out: Shape) -> int:
        return (self.in_units(shape) + self.bias) * self.units

    def macs(self, shape: Shape, out: Shape) -> int:
        return math.prod(out) * self.in_units(shape)


@register
class Flatten(Layer):
    """Flatten all axes but the batch axis (`nn.Flatten`)."""

    kind: ClassVar[str] = "flatten"

    def infer(self, shape: Shape) -> Shape:
        return (math.prod(shape),)


@register
class Dropout(Layer):
    """Dropout while training (`nn.Dropout`)."""

    kind: ClassVar[str] = "dropout"
    shorthand: ClassVar[str] = "rate"
    rate: float = Field(ge=0, lt=1, description="Fraction of activations dropped while training.")

    def infer(self, shape: Shape) -> Shape:
        return shape

    def lint(self, shape: Shape) -> str | None:
        return "dropout with rate 0 does nothing" if self.rate == 0 else None


@register
class DropPath(Layer):
    """Stochastic depth (Huang et al., 2016; torchvision's `StochasticDepth(p, "row")`): while training, each
    example's whole input is dropped with probability `rate` and kept ones are scaled by 1 / (1 - rate); the
    identity at inference. Written at the end of a residual branch. Its draws come from MXNet's generator, which
    training reseeds before every step, so a resumed run repeats them."""

    kind: ClassVar[str] = "drop_path"
    shorthand: ClassVar[str] = "rate"
    rate: float = Field(ge=0, lt=1, description="Probability of dropping an example's input while training.")

    def infer(self, shape: Shape) -> Shape:
        return shape

    def lint(self, shape: Shape) -> str | None:
        return "drop_path with rate 0 does nothing" if self.rate == 0 else None


@register
class BatchNorm(Layer, BatchNormOptions):
    """Batch normalisation over the channel axis (`nn.BatchNorm`)."""

    kind: ClassVar[str] = "batchnorm"

    def infer(self, shape: Shape) -> Shape:
        return shape

    def params(self, shape: Shape, out: Shape) -> int:
        return 2 * shape[0]

    def state(self, shape: Shape, out: Shape) -> int:
        return 2 * shape[0]


@register
class ActivationLayer(Layer):
    """An activation on its own (`nn.Activation`, `nn.GELU`, `nn.Swish`). The functions, of x: relu max(x, 0);
    sigmoid 1 / (1 + exp(-x)); tanh; softrelu log(1 + exp(x)); softsign x / (1 + |x|); gelu x * Phi(x), Phi the
    normal distribution function (the exact erf form, as torch's nn.GELU()); swish x * sigmoid(x); relu6
    min(max(x, 0), 6); hard_sigmoid relu6(x + 3) / 6 (MobileNetV3's); hard_swish x * relu6(x + 3) / 6."""

    kind: ClassVar[str] = "activation"
    shorthand: ClassVar[str] = "function"
    function: Activation = Field(description="The activation function.")

    def infer(self, shape: Shape) -> Shape:
        return shape


@register
class Gelu(Layer):
    """GELU on its own, x * Phi(x) with Phi the normal distribution function (the exact erf form, as torch's
    `nn.GELU()`); the same as `activation: gelu`."""

    kind: ClassVar[str] = "gelu"

    def infer(self, shape: Shape) -> Shape:
        return shape


@register
class Scale(Layer):
    """Multiplies by a constant: Inception-ResNet's `x + 0.17 * branch` is a branch ending in `- scale: 0.17`."""

    kind: ClassVar[str] = "scale"
    shorthand: ClassVar[str] = "value"
    value: float = Field(description="The constant factor.")

    def infer(self, shape: Shape) -> Shape:
        return shape

    def macs(self, shape: Shape, out: Shape) -> int:
        return math.prod(out)

    def lint(self, shape: Shape) -> str | None:
        return "scale by 1 does nothing" if self.value == 1 else None


@register
class LayerScale(Layer):
    """A learnable factor per channel (CaiT, ConvNeXt's `gamma`), starting at `init`."""

    kind: ClassVar[str] = "layer_scale"
    shorthand: ClassVar[str] = "init"
    init: float = Field(1e-6, description="The factors' initial value (ConvNeXt: 1e-6).")

    def infer(self, shape: Shape) -> Shape:
        return shape

    def params(self, shape: Shape, out: Shape) -> int:
        return shape[0]

    def macs(self, shape: Shape, out: Shape) -> int:
        return math.prod(out)


@register
class LayerNorm(Layer):
    """Layer normalisation over the channel axis at each position (ConvNeXt's `LayerNorm2d`; on a vector, over
    its features), with a learnt scale and shift per channel (`nn.LayerNorm(axis=1)`)."""

    kind: ClassVar[str] = "layernorm"
    epsilon: float = Field(1e-6, gt=0, description="Added to the variance (ConvNeXt: 1e-6; PyTorch's "
                                                   "nn.LayerNorm: 1e-5).")

    def infer(self, shape: Shape) -> Shape:
        return shape

    def params(self, shape: Shape, out: Shape) -> int:
        return 2 * shape[0]


@register
class LRN(Layer):
    """Local response normalisation across channels (Krizhevsky et al., 2012), as the original GoogLeNet uses."""

    kind: ClassVar[str] = "lrn"
    size: Size = Field(5, description="Number of neighbouring channels (odd).")
    alpha: float = Field(1e-4, gt=0, description="Scale.")
    beta: float = Field(0.75, gt=0, description="Exponent.")
    k: float = Field(2.0, gt=0, description="Additive constant (Gluon's `knorm`; Caffe uses 1).")

    @model_validator(mode="after")
    def _odd(self) -> LRN:
        if self.size % 2 == 0:
            raise ValueError(f"size must be odd, got {self.size}")
        return self

    def infer(self, shape: Shape) -> Shape:
        _need_image(self.kind, shape)
        return shape


@register
class Upsample(Layer):
    """Spatial upsampling by an integer `scale` or to a `size` (nearest neighbour, or bilinear)."""

    kind: ClassVar[str] = "upsample"
    scale: Optional[Size] = Field(None, description="Multiply height and width by this (or give `size`).")
    size: Optional[Pair] = Field(None, description="Output size: an integer or [height, width], e.g. "
                                                   "`[$height, $width]` of a block's input.")
    mode: Literal["nearest", "bilinear"] = Field("nearest", description="Interpolation.")
    align_corners: Flag = Field(False, description="Bilinear only: align the corner pixels (PyTorch's "
                                                   "align_corners; MXNet's default is true).")

    @model_validator(mode="after")
    def _scale_or_size(self) -> Upsample:
        if (self.scale is None) == (self.size is None):
            raise ValueError("give either scale or size")
        return self

    def infer(self, shape: Shape) -> Shape:
        c, h, w = _need_image(self.kind, shape)
        out = (h * self.scale, w * self.scale) if self.scale is not None else pair(self.size or 1)
        if self.mode == "nearest" and (out[0] % h or out[1] % w):
            raise ShapeError(f"nearest upsampling needs a whole multiple of the input size {h}x{w}, "
                             f"not {out[0]}x{out[1]} (use mode: bilinear)")
        return (c, out[0], out[1])

    def macs(self, shape: Shape, out: Shape) -> int:
        return 4 * math.prod(out) if self.mode == "bilinear" else 0  # 4 weighted neighbours per output value


# ---------------------------------------------------------------------------------------------
# Composition: sequences and parallel branches

# Validated layers; in the JSON Schema, a list of layer entries as a user writes them.
Layers = Annotated[tuple[InstanceOf[Layer], ...],
                   WithJsonSchema({"type": "array", "items": {"x-layer-entry": True}})]


_ENTRIES = {"type": "array", "items": {"x-layer-entry": True}}
Branches = Annotated[tuple[Layers, ...], WithJsonSchema({
    "type": "array", "minItems": 1, "items": {"anyOf": [_ENTRIES, {
        "type": "object", "required": ["layers"], "additionalProperties": False,
        "properties": {"when": {"anyOf": [{"type": "boolean"}, {"type": "string", "pattern": r"^\$"}]},
                       "layers": _ENTRIES}}]}})]


@register
class Sequential(Layer):
    """Layers applied one after another (a `HybridSequential`), e.g. a reusable block's expansion."""

    kind: ClassVar[str] = "sequential"
    children: ClassVar[dict[str, int]] = {"layers": 1}
    layers: Layers = Field(description="The layers, in order.")
    label: str | None = Field(None, description="Shown in summaries and diagrams instead of `sequential`.")

    def sequences(self) -> tuple[tuple[str | None, Layers], ...]:
        return ((None, self.layers),)

    def activations(self, shape: Shape, out: Shape) -> int:
        return 0  # its layers write the values

    def display(self) -> str:
        return self.label or self.kind


def _broadcast(shapes: list[Shape]) -> Shape:
    """The shape elementwise `add` / `mul` of `shapes` gives, with NumPy's broadcasting."""
    rank = len(shapes[0])
    if any(len(s) != rank for s in shapes):
        raise ShapeError("cannot combine branches of shapes " + ", ".join(map(format_shape, shapes)))
    out = []
    for dims in zip(*shapes):
        sizes = set(dims) - {1}
        if len(sizes) > 1:
            raise ShapeError("branch shapes " + ", ".join(map(format_shape, shapes)) + " do not match (nor broadcast)")
        out.append(sizes.pop() if sizes else 1)
    return tuple(out)


@register
class Parallel(Layer):
    """Branches applied to the same input and merged: `concat` on channels (Inception, dense blocks),
    `add` (residual), `mul` (gates such as squeeze-and-excitation). An empty branch is the identity; with
    `crop: center` it is the U-Net's crop-and-copy."""

    kind: ClassVar[str] = "parallel"
    children: ClassVar[dict[str, int]] = {"branches": 2}
    branches: Branches = Field(min_length=1, description="Branches, each a list of layers ([] is the identity), or "
                                                         "{when: condition, layers: [...]}, which exists only when "
                                                         "the condition holds.")
    merge: Literal["concat", "add", "mul"] = Field("concat", description="How branch outputs combine: concat "
                                                   "on the channel axis, or elementwise add / mul (broadcasting).")
    label: str | None = Field(None, description="Shown in summaries and diagrams instead of `parallel`.")
    crop: Literal["center"] | None = Field(None, description="`center`: before merging, cut each branch's output "
                                           "to the smallest height and width among the branches, keeping its "
                                           "centre (the U-Net's crop-and-copy of an encoder feature map); an odd "
                                           "difference leaves the extra row or column below and on the right.")

    def sequences(self) -> tuple[tuple[str | None, Layers], ...]:
        return tuple((f"branch{i}", branch) for i, branch in enumerate(self.branches, 1))

    def windows(self, outs: list[Shape]) -> list[tuple[int, int, int, int]]:
        """(top, left, height, width) of the part of each branch's output that `crop: center` merges: the centred
        part of the smallest height and width among the branches."""
        if any(len(s) != 3 for s in outs):
            raise ShapeError("crop needs images (C x H x W) in every branch; branch outputs are "
                             + ", ".join(map(format_shape, outs)))
        height, width = min(s[1] for s in outs), min(s[2] for s in outs)
        return [((s[1] - height) // 2, (s[2] - width) // 2, height, width) for s in outs]

    def combine(self, shape: Shape, outs: list[Shape]) -> Shape:
        if self.crop is not None:
            outs = [(s[0], h, w) for s, (_, _, h, w) in zip(outs, self.windows(outs))]
        if self.merge != "concat":
            return _broadcast(outs)
        if len({len(s) for s in outs}) > 1 or len({s[1:] for s in outs}) > 1:
            raise ShapeError("concat needs equal spatial sizes; branch outputs are "
                             + ", ".join(map(format_shape, outs)))
        return (sum(s[0] for s in outs),) + outs[0][1:]

    def display(self) -> str:
        return self.label or f"parallel({self.merge})"
