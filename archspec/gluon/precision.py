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

from ..spec.diagnostics import InputError
from .build import HYBRIDIZE, traced
from .modules import Network

Precision = Literal["fp32", "bf16", "int8"]  # as the command line names them
CALIBRATION_BATCH = 32


def supports_bfloat16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether this CPU has AVX-512 BF16, which oneDNN's bfloat16 kernels need (without it MXNet 1.9 either
    refuses them or emulates them far slower than float32)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return False
    return any(line.startswith("flags") and "avx512_bf16" in line.split() for line in text.splitlines())


def require_bfloat16(what: str) -> None:
    """Refuse bfloat16 where it cannot run well: an `InputError` naming `what` asked for it."""
    if not supports_bfloat16():
        raise InputError(f"{what}: this CPU has no AVX-512 BF16 instructions (avx512_bf16 in /proc/cpuinfo), "
                         "which MXNet's bfloat16 kernels need; use fp32 (or int8 for inference)")


def for_inference(net: Network, precision: Precision, calibration: Optional[Any] = None) -> Any:
    """The block that computes `net`'s outputs in `precision`: `net` itself for fp32, else `to_bfloat16` or
    `to_int8` (calibrated on `calibration`, N x C x H x W float32 images)."""
    if precision == "fp32":
        return net
    if precision == "bf16":
        require_bfloat16("--precision bf16")
        return to_bfloat16(net)
    if calibration is None or len(calibration) == 0:
        raise InputError("--precision int8 needs calibration images")
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
        fused = sym.get_backend_symbol("MKLDNN_QUANTIZE")
        qsym, qargs, qauxs = quantization.quantize_model(
            fused, args, auxs, ctx=ctx, calib_mode="naive", calib_data=data, num_calib_examples=len(calibration),
            quantized_dtype="auto", quantize_mode="full", data_names=(inputs[0].name,), label_names=None,
            logger=None)
        qsym = qsym.get_backend_symbol("MKLDNN_QUANTIZE")
    finally:
        npx.set_np()
    weights = {name: w.as_np_ndarray() for name, w in {**qargs, **qauxs}.items()}  # numpy mode saves only these
    return _block(qsym.as_np_ndarray(), inputs, weights, ctx)
