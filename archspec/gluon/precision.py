"""Reduced-precision inference, opt-in: bfloat16 through MXNet's AMP and INT8 through its quantization
(oneDNN kernels on CPUs with AVX-512 BF16 / VNNI).

MXNet 1.9's Gluon entry points (`amp.convert_hybrid_block`, `quantization.quantize_net_v2`) fail on a
numpy-mode network: the first returns a `SymbolBlock` over a classic symbol, whose outputs numpy mode
refuses ("Block's output ndarrays/symbols must be of type mxnet.numpy.ndarray"); the second re-traces the
network in classic mode, where numpy-mode Gluon layers call operators that `mxnet.symbol` lacks. Both work
one level down: convert the traced graph with the symbol API, then turn the result back into a numpy
symbol (`as_np_ndarray()`) for a `SymbolBlock` that takes and returns `mxnet.np` arrays.

Training in bfloat16 (`mixed_bfloat16`) converts the training graph the same way, over the network's own
float32 parameters: AMP's casts sit inside the graph, so convolutions and dense layers compute in bfloat16
while the weights, their gradients and the optimizer's update stay float32 (the master weights).
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Literal, Optional

from mxnet import autograd, gluon

from ..spec.diagnostics import InputError
from .build import HYBRIDIZE, traced
from .modules import Network

Precision = Literal["fp32", "bf16", "int8"]  # as the command line names them
CALIBRATION_BATCH = 32


class PrecisionWarning(UserWarning):
    """A precision chosen where it is slower than float32, or where oneDNN cannot run it natively; the message
    names the reason (`archspec` prints it as `archspec: warning: ...`)."""


def _flags(cpuinfo: str) -> set[str]:
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return set()
    return {flag for line in text.splitlines() if line.startswith("flags") for flag in line.split()}


def supports_bfloat16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether this CPU has AVX-512 BF16, which oneDNN's bfloat16 kernels need (without it MXNet 1.9 either
    refuses them or emulates them far slower than float32)."""
    return "avx512_bf16" in _flags(cpuinfo)


def slower_than_fp32(precision: Precision, training: bool = False, cpuinfo: str = "/proc/cpuinfo",
                     mxnet_version: Optional[str] = None) -> Optional[str]:
    """Why `precision` is slower than float32 here, or None. bf16: MXNet 1.x ships oneDNN 2.4 without AMX
    kernels and AMP casts every weight on every call, so even on a CPU with AVX-512 BF16 and AMX it measured
    0.64x float32 in inference and 0.77x in training (README: Benchmarks). int8: without VNNI (avx512_vnni or
    avx_vnni) oneDNN has no native INT8 dot product and emulates it."""
    import mxnet

    version = mxnet_version or mxnet.__version__
    if precision == "bf16" and version.startswith("1."):
        measured = "0.77x float32 in training" if training else "0.64x float32 in inference"
        return (f"--precision bf16 is slower than fp32 with MXNet {version}: its oneDNN 2.4 has no AMX kernels and "
                f"AMP casts the weights on every call (measured {measured} on a CPU with AVX-512 BF16 and AMX); "
                "use fp32 for speed")
    if precision == "int8" and not {"avx512_vnni", "avx_vnni"} & _flags(cpuinfo):
        return ("--precision int8: this CPU has no VNNI instructions (avx512_vnni or avx_vnni in /proc/cpuinfo), "
                "so oneDNN emulates its INT8 dot products and it may well be slower than fp32")
    return None


def warn_if_slower(precision: Precision, training: bool = False) -> None:
    """A `PrecisionWarning` when `slower_than_fp32` has a reason."""
    reason = slower_than_fp32(precision, training)
    if reason:
        warnings.warn(reason, PrecisionWarning, stacklevel=3)


def require_bfloat16(what: str) -> None:
    """Refuse bfloat16 where it cannot run well: an `InputError` naming `what` asked for it."""
    if not supports_bfloat16():
        raise InputError(f"{what}: this CPU has no AVX-512 BF16 instructions (avx512_bf16 in /proc/cpuinfo), "
                         "which MXNet's bfloat16 kernels need; use fp32 (or int8 for inference)")


def for_inference(net: Network, precision: Precision, calibration: Optional[Any] = None,
                  portable: bool = False) -> Any:
    """The block that computes `net`'s outputs in `precision`: for fp32 `net` itself, or with the rewrites it was
    built with (`to_onednn`, the default, where `net` is on the CPU; `net.folded()`; only the folded graph when the
    graph must be `portable`, as ONNX needs), else `to_bfloat16` or `to_int8` (calibrated on `calibration`,
    N x C x H x W float32 images)."""
    if precision == "fp32":
        if net.rewrites.onednn and not portable and _on_cpu(net):
            return to_onednn(net)
        return net.folded() if net.rewrites.fold_batchnorm else net
    if precision == "bf16":
        require_bfloat16("--precision bf16")
        warn_if_slower("bf16")
        return to_bfloat16(net)
    if calibration is None or len(calibration) == 0:
        raise InputError("--precision int8 needs calibration images")
    warn_if_slower("int8")
    return to_int8(net, calibration)


def mixed_bfloat16(net: Network) -> Any:
    """A block for training `net` in mixed precision: the training graph (auxiliary heads included) with AMP's
    bfloat16 casts, over `net`'s own float32 parameters (shared, so the trainer, checkpoints and
    `save_parameters` see the master weights). It returns float32 outputs, as `net` does."""
    require_bfloat16("--precision bf16")
    inputs, sym, _ = traced(net, net.training_block())  # with the auxiliary heads where the spec has them
    trainable = _symbol_block(_bfloat16(sym, inputs), inputs, params=net.collect_params())
    trainable.hybridize(**HYBRIDIZE)
    return trainable


def _bfloat16(sym: Any, inputs: Any) -> Any:
    """`sym` with AMP's bfloat16 casts (convolutions and dense layers in bfloat16), as a numpy symbol."""
    from mxnet.contrib import amp

    converted = amp.convert_symbol(sym, "bfloat16", data_names=[i.name for i in inputs], cast_optional_params=False)
    return converted.as_np_ndarray()


def _symbol_block(sym: Any, inputs: Any, params: Any = None) -> Any:
    """`gluon.SymbolBlock`, without its warning that it cannot tell the input's type before the first call."""
    from mxnet import gluon

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Cannot decide type for the following arguments", UserWarning)
        return gluon.SymbolBlock(sym, inputs, params=params)


def _block(sym: Any, inputs: Any, params: dict[str, Any], ctx: Any) -> Any:
    block = _symbol_block(sym, inputs)
    block.collect_params().load_dict(params, ctx=ctx, cast_dtype=True, dtype_source="saved")
    block.hybridize(**HYBRIDIZE)
    return block


def to_bfloat16(net: Network, ctx: Any = None) -> Any:
    """An inference block computing in bfloat16 where AMP deems it safe (convolutions, dense layers),
    in float32 elsewhere; it takes and returns float32 `mxnet.np` arrays."""
    import mxnet as mx

    ctx = ctx or mx.cpu()
    inputs, sym, params = traced(net)
    return _block(_bfloat16(sym, inputs), inputs, params, ctx)


def _backend(sym: Any, backend: str) -> Any:
    """`sym` (numpy mode) partitioned by one of MXNet's subgraph backends (`MKLDNN`: convolution + batch norm +
    activation + sum fused; `MKLDNN_QUANTIZE`: the same, ready for quantization), as a classic symbol."""
    return sym.as_nd_ndarray().get_backend_symbol(backend)


def _on_cpu(net: Network) -> bool:
    """Every parameter of `net` lives on the CPU only (oneDNN's backend is MXNet's CPU backend)."""
    return all(c.device_type == "cpu" for p in net.collect_params().values() for c in p.list_ctx())


def to_onednn(net: Network, ctx: Any = None) -> Any:
    """An fp32 inference block through MXNet's oneDNN subgraph backend, over copies of `net`'s weights taken now:
    batch norms folded into the convolutions before them, activations and residual sums fused. Under
    `autograd.record` it runs `net` itself (`_Differentiable`)."""
    import mxnet as mx

    inputs, sym, params = traced(net)
    return _Differentiable(net, _block(_backend(sym, "MKLDNN").as_np_ndarray(), inputs, params, ctx or mx.cpu()))


class _Differentiable(gluon.Block):
    """`fast` (a partitioned graph over copies of the weights) for inference, and `net` whenever autograd records:
    the oneDNN backend's fused operators (`_sg_mkldnn_conv`) have no gradient in MXNet 1.9.1, and `backward`
    through them gives zeros without a word. Neither is a child: the block has no parameters of its own."""

    def __init__(self, net: Network, fast: Any):
        super().__init__()
        object.__setattr__(self, "net", net)
        object.__setattr__(self, "fast", fast)

    def forward(self, x: Any) -> Any:
        return self.net(x) if autograd.is_recording() else self.fast(x)


def to_int8(net: Network, calibration: Any, batch_size: int = CALIBRATION_BATCH, ctx: Any = None) -> Any:
    """An inference block with INT8 convolutions and dense layers, calibrated on `calibration` (a few
    hundred real images, N x C x H x W float32 `mxnet.np`): MXNet's oneDNN quantization flow, as its
    `imagenet_gen_qsym_mkldnn.py` example runs it ('naive' calibration: min/max of each layer's output)."""
    import mxnet as mx
    from mxnet import npx
    from mxnet.contrib import quantization

    ctx = ctx or mx.cpu()
    inputs, sym, params = traced(net)
    sym = sym.as_nd_ndarray()
    arg_names, aux_names = set(sym.list_arguments()), set(sym.list_auxiliary_states())
    args = {k: v.as_nd_ndarray() for k, v in params.items() if k in arg_names}
    auxs = {k: v.as_nd_ndarray() for k, v in params.items() if k in aux_names}
    data = mx.io.NDArrayIter(data=calibration.as_nd_ndarray(), batch_size=min(batch_size, len(calibration)),
                             data_name=inputs[0].name)
    npx.reset_np()  # the calibration runs a classic Module
    try:
        fused = _backend(sym, "MKLDNN_QUANTIZE")
        qsym, qargs, qauxs = quantization.quantize_model(
            fused, args, auxs, ctx=ctx, calib_mode="naive", calib_data=data, num_calib_examples=len(calibration),
            quantized_dtype="auto", quantize_mode="full", data_names=(inputs[0].name,), label_names=None,
            logger=None)
        qsym = _backend(qsym, "MKLDNN_QUANTIZE")
    finally:
        npx.set_np()
    weights = {name: w.as_np_ndarray() for name, w in {**qargs, **qauxs}.items()}  # numpy mode saves only these
    return _block(qsym.as_np_ndarray(), inputs, weights, ctx)
