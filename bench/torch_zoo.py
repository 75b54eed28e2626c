"""Any analysed spec as a PyTorch `nn.Module`: the peer every zoo spec is benchmarked against (bench/zoo.py).
In bench/, not in the product: archspec builds Gluon networks; this only gives the benchmark a PyTorch twin.

It reads what the Gluon builder reads (archspec/gluon/build.py): the analysis rows, each with its layer, the
shape it receives and the rows of its child sequences, so both networks have the same layers in the same order.
Each module is named as its Gluon block (`b3.0.branch2.1`), and a convolution with batch norm or an activation
Gluon cannot fuse is a Sequential in the same order as Gluon's, so a Gluon parameter's path is its PyTorch name
(Gluon's `gamma`/`beta` are PyTorch's `weight`/`bias`): `copy_from_gluon` copies a built network's weights by
name, and equal outputs prove the translation.
"""
from __future__ import annotations

from typing import Any, Callable, Optional

import torch
from torch import nn
from torch.nn import functional as F

from archspec.spec import Spec, kinds
from archspec.spec.analysis import Row, summarize
from archspec.spec.kinds import Shape, pair

# Gluon fuses these into Conv2D / Dense (archspec/gluon/layers.py): one block, whose parameters sit at its path
_FUSABLE = ("relu", "sigmoid", "tanh", "softrelu", "softsign")
Translator = Callable[[Any, Shape, list[Optional[nn.Module]]], nn.Module]
TRANSLATORS: dict[type, Translator] = {}


def translates(kind: type) -> Callable[[Translator], Translator]:
    def register(translator: Translator) -> Translator:
        TRANSLATORS[kind] = translator
        return translator
    return register


class HardSigmoid(nn.Module):
    """relu6(x + 3) / 6, as archspec defines it (torch's Hardsigmoid is the same function)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu6(x + 3) / 6


ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "softrelu": nn.Softplus, "softsign": nn.Softsign,
    "gelu": nn.GELU, "swish": nn.SiLU, "relu6": nn.ReLU6, "hard_sigmoid": HardSigmoid, "hard_swish": nn.Hardswish}


def activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise NotImplementedError(f"activation {name!r} has no PyTorch translation in bench/torch_zoo.py")
    return ACTIVATIONS[name]()


class Conv(nn.Conv2d):
    """A convolution with the activation Gluon fuses into it (Conv2D(activation=...)): one module, one path."""

    def __init__(self, *args: Any, act: Optional[str] = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.act = activation(act) if act else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = super().forward(x)
        return self.act(y) if self.act is not None else y


class Linear(nn.Linear):
    """Gluon's Dense: flattens all axes but the batch axis first (unless `flatten` is false), fused activation."""

    def __init__(self, *args: Any, flatten: bool = True, act: Optional[str] = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.flatten, self.act = flatten, activation(act) if act else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = super().forward(x.flatten(1) if self.flatten else x)
        return self.act(y) if self.act is not None else y


def batchnorm(channels: int, rank: int, momentum: float, epsilon: float) -> nn.Module:
    # Gluon keeps momentum * running + (1 - momentum) * batch; PyTorch's momentum is the batch's share
    norm = nn.BatchNorm2d if rank == 3 else nn.BatchNorm1d
    return norm(channels, eps=epsilon, momentum=1 - momentum)


@translates(kinds.Conv)
def conv(layer: kinds.Conv, shape: Shape, children: list[Optional[nn.Module]]) -> nn.Module:
    bn = layer.bn_options
    fused = layer.activation in _FUSABLE and not bn
    top, bottom, left, right = layer.sides(shape)
    even = top == bottom and left == right
    module = Conv(shape[0], layer.channels, pair(layer.kernel), pair(layer.stride), (top, left) if even else 0,
                  pair(layer.dilation), layer.groups, bias=layer.bias, act=layer.activation if fused else None)
    if even and (fused or (layer.activation is None and not bn)):
        return module
    parts: list[nn.Module] = [] if even else [nn.ZeroPad2d((left, right, top, bottom))]
    parts.append(module)
    if bn:
        parts.append(batchnorm(layer.channels, 3, bn.momentum, bn.epsilon))
    if layer.activation:
        parts.append(activation(layer.activation))
    return nn.Sequential(*parts)


@translates(kinds.ConvTranspose)
def conv_transpose(layer: kinds.ConvTranspose, shape: Shape, children: list[Optional[nn.Module]]) -> nn.Module:
    return nn.ConvTranspose2d(shape[0], layer.channels, pair(layer.kernel), pair(layer.stride), pair(layer.padding),
                              pair(layer.output_padding), layer.groups, layer.bias, pair(layer.dilation))


def _window(layer: Any) -> dict[str, Any]:
    return dict(kernel_size=pair(layer.kernel), padding=pair(layer.padding), ceil_mode=layer.ceil_mode,
                stride=pair(layer.stride if layer.stride is not None else layer.kernel))


@translates(kinds.MaxPool)
def maxpool(layer: kinds.MaxPool, shape: Shape, children: list[Optional[nn.Module]]) -> nn.Module:
    return nn.MaxPool2d(**_window(layer))


@translates(kinds.AvgPool)
def avgpool(layer: kinds.AvgPool, shape: Shape, children: list[Optional[nn.Module]]) -> nn.Module:
    return nn.AvgPool2d(count_include_pad=layer.count_include_pad, **_window(layer))


@translates(kinds.GlobalAvgPool)
def global_avg_pool(layer: Any, shape: Shape, children: list[Optional[nn.Module]]) -> nn.Module:
    return nn.AdaptiveAvgPool2d(1)


@translates(kinds.GlobalMaxPool)
def global_max_pool(layer: Any, shape: Shape, children: list[Optional[nn.Module]]) -> nn.Module:
    return nn.AdaptiveMaxPool2d(1)


@translates(kinds.Dense)
def dense(layer: kinds.Dense, shape: Shape, children: list[Optional[nn.Module]]) -> nn.Module:
    fused = layer.activation in _FUSABLE or layer.activation is None
    module = Linear(layer.in_units(shape), layer.units, bias=layer.bias, flatten=layer.flatten,
                    act=layer.activation if fused else None)
    return module if fused else nn.Sequential(module, activation(str(layer.activation)))


@translates(kinds.Flatten)
def flatten(layer: Any, shape: Shape, children: list[Optional[nn.Module]]) -> nn.Module:
    return nn.Flatten()


@translates(kinds.Dropout)
def dropout(layer: kinds.Dropout, shape: Shape, children: list[Optional[nn.Module]]) -> nn.Module:
    return nn.Dropout(layer.rate)


class DropPath(nn.Module):
    """Stochastic depth, one draw per example (torchvision's StochasticDepth(p, "row")); the identity at eval."""

    def __init__(self, rate: float):
        super().__init__()
        self.rate = rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.rate == 0:
            return x
        keep = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(1 - self.rate)
        return x * keep / (1 - self.rate)


@translates(kinds.DropPath)
def drop_path(layer: kinds.DropPath, shape: Shape, children: list[Optional[nn.Module]]) -> nn.Module:
    return DropPath(layer.rate)


@translates(kinds.BatchNorm)
def batchnorm_layer(layer: kinds.BatchNorm, shape: Shape, children: list[Optional[nn.Module]]) -> nn.Module:
    return batchnorm(shape[0], len(shape), layer.momentum, layer.epsilon)


@translates(kinds.ActivationLayer)
def activation_layer(layer: kinds.ActivationLayer, shape: Shape, children: list[Optional[nn.Module]]) -> nn.Module:
    return activation(layer.function)


@translates(kinds.Gelu)
def gelu(layer: Any, shape: Shape, children: list[Optional[nn.Module]]) -> nn.Module:
    return nn.GELU()


class Scale(nn.Module):
    def __init__(self, value: float):
        super().__init__()
        self.value = value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.value


@translates(kinds.Scale)
def scale(layer: kinds.Scale, shape: Shape, children: list[Optional[nn.Module]]) -> nn.Module:
    return Scale(layer.value)


class LayerScale(nn.Module):
    """A learnt factor per channel, `gamma` as in Gluon (archspec/gluon/modules.py)."""

    def __init__(self, channels: int, init: float, rank: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((channels,), init))
        self.shape = (channels,) + (1,) * (rank - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma.view(self.shape)


@translates(kinds.LayerScale)
def layer_scale(layer: kinds.LayerScale, shape: Shape, children: list[Optional[nn.Module]]) -> nn.Module:
    return LayerScale(shape[0], layer.init, len(shape))


class ChannelLayerNorm(nn.LayerNorm):
    """Layer norm over the channel axis at each position (ConvNeXt's LayerNorm2d, Gluon's LayerNorm(axis=1))."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            return super().forward(x)
        return super().forward(x.movedim(1, -1)).movedim(-1, 1)


@translates(kinds.LayerNorm)
def layernorm(layer: kinds.LayerNorm, shape: Shape, children: list[Optional[nn.Module]]) -> nn.Module:
    return ChannelLayerNorm(shape[0], eps=layer.epsilon)


@translates(kinds.LRN)
def lrn(layer: kinds.LRN, shape: Shape, children: list[Optional[nn.Module]]) -> nn.Module:
    return nn.LocalResponseNorm(layer.size, layer.alpha, layer.beta, layer.k)


@translates(kinds.Upsample)
def upsample(layer: kinds.Upsample, shape: Shape, children: list[Optional[nn.Module]]) -> nn.Module:
    out = layer.infer(shape)
    if layer.mode == "nearest":
        return nn.Upsample(size=(out[1], out[2]), mode="nearest")
    return nn.Upsample(size=(out[1], out[2]), mode="bilinear", align_corners=layer.align_corners)


@translates(kinds.Sequential)
def sequential(layer: Any, shape: Shape, children: list[Optional[nn.Module]]) -> nn.Module:
    (layers,) = children
    return layers if layers is not None else nn.Sequential()


class Parallel(nn.Module):
    """Branches on the same input (`branch1`, ... as Gluon names them; an empty one is the identity), merged."""

    def __init__(self, branches: list[tuple[str, Optional[nn.Module]]], merge: str):
        super().__init__()
        self.merge, self.names = merge, [name if branch is not None else None for name, branch in branches]
        for name, branch in branches:
            if branch is not None:
                self.add_module(name, branch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [x if name is None else getattr(self, name)(x) for name in self.names]
        if self.merge == "concat":
            return torch.cat(outs, dim=1)
        result = outs[0]
        for out in outs[1:]:
            result = result + out if self.merge == "add" else result * out
        return result


@translates(kinds.Parallel)
def parallel(layer: kinds.Parallel, shape: Shape, children: list[Optional[nn.Module]]) -> nn.Module:
    return Parallel([(str(name), child) for (name, _), child in zip(layer.sequences(), children)], layer.merge)


def _sequence(rows: tuple[Row, ...]) -> nn.Sequential:
    return nn.Sequential(*(_module(row) for row in rows))


def _module(row: Row) -> nn.Module:
    layer = row.layer
    assert layer is not None
    children = [_sequence(rows) if rows else None for _, rows in row.sequences]
    for cls in type(layer).__mro__:  # a subclass of a built-in kind translates as its parent, as in Gluon
        if cls in TRANSLATORS:
            return TRANSLATORS[cls](layer, row.input, children)
    raise NotImplementedError(f"{row.path}: kind {layer.kind!r} has no PyTorch translation in bench/torch_zoo.py")


class Network(nn.Module):
    """Stages in order, each an attribute named as in the spec (`net.b3`); the input normalised as the spec
    declares; in training mode with auxiliary heads, `(main, *aux)` as archspec's network returns them."""

    def __init__(self, spec: Spec):
        super().__init__()
        summary = summarize(spec)
        self.stages = [name for name, _ in spec.layers()]
        for name in self.stages:
            self.add_module(name, _sequence(summary.row(name).layers))
        self.taps: dict[tuple[str, Optional[int]], list[str]] = {}
        self.heads = list(spec.aux)
        self.weights = [head.weight for head in spec.aux.values()]
        for name, head in spec.aux.items():
            self.add_module(name, _sequence(summary.row(name).layers))
            self.taps.setdefault(head.tap, []).append(name)
        mean, std = spec.input.mean, spec.input.std
        self.normalise = mean is not None
        if mean is not None:
            self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
            self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> Any:
        if self.normalise:
            x = (x - self.mean) / self.std
        with_aux = self.training and bool(self.heads)
        outputs: dict[str, torch.Tensor] = {}
        for name in self.stages:
            stage = getattr(self, name)
            if not with_aux:
                x = stage(x)
                continue
            for i, layer in enumerate(stage):
                x = layer(x)
                for head in self.taps.get((name, i), []):
                    outputs[head] = getattr(self, head)(x)
            for head in self.taps.get((name, None), []):
                outputs[head] = getattr(self, head)(x)
        return (x, *(outputs[h] for h in self.heads)) if with_aux else x


def torch_network(spec: Spec) -> Network:
    """The PyTorch twin of a loaded spec (`archspec.load_spec`), with PyTorch's default initialisation."""
    return Network(spec)


def loss(net: Network, outputs: Any, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the main output plus the auxiliary heads' weighted losses, as `archspec train` sums them."""
    if not isinstance(outputs, tuple):
        return F.cross_entropy(outputs, labels)
    main, *aux = outputs
    return F.cross_entropy(main, labels) + sum(w * F.cross_entropy(a, labels) for w, a in zip(net.weights, aux))


def counts(module: nn.Module) -> tuple[int, int]:
    """(trainable parameters, batch-norm running statistics), as archspec's summary counts them."""
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    state = sum(b.numel() for name, b in module.named_buffers() if name.rsplit(".", 1)[-1].startswith("running_"))
    return trainable, state


_TORCH_ROLE = {"gamma": "weight", "beta": "bias"}


def copy_from_gluon(net: Network, arrays: dict[str, Any]) -> None:
    """Set `net`'s weights to a built Gluon network's (`arrays`: path -> numpy array, as
    `archspec.gluon.compat.params_by_path` names them). Every array must find its place, and every place an array."""
    state = net.state_dict()
    wanted = {k for k in state if not k.endswith("num_batches_tracked")}
    loaded = {}
    for path, array in arrays.items():
        name = path
        if name not in state:
            prefix, _, role = path.rpartition(".")
            name = f"{prefix}.{_TORCH_ROLE.get(role, role)}"
        if name not in state or tuple(state[name].shape) != tuple(array.shape):
            raise KeyError(f"{path} {tuple(array.shape)}: no such PyTorch weight ({name})")
        loaded[name] = torch.from_numpy(array)
    missing = sorted(wanted - set(loaded))
    if missing:
        raise KeyError(f"PyTorch weights without a Gluon array: {', '.join(missing[:5])}")
    net.load_state_dict({**state, **loaded})

