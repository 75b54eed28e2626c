"""Reduced-precision inference, opt-in: bfloat16 through MXNet's AMP and INT8 through its quantization
(oneDNN kernels on CPUs with AVX-512 BF16 / VNNI).

MXNet 1.9's Gluon entry points (`amp.convert_hybrid_block`, `quantization.quantize_net_v2`) fail on a
numpy-mode network: the first returns a `SymbolBlock` over a classic symbol, whose outputs numpy mode
refuses ("Block's output ndarrays/symbols must be of type mxnet.numpy.ndarray"); the second re-traces the
network in classic mode, where numpy-mode Gluon layers call operators that `mxnet.symbol` lacks. Both work
one level down: convert the traced graph with the symbol API, then turn the result back into a numpy
symbol (`as_np_ndarray()`) for a `SymbolBlock` that takes and returns `mxnet.np` arrays.
"""
from __future__ import annotations

from typing import Any

from .build import HYBRIDIZE, traced
from .modules import Network

PRECISIONS = ("float32", "bfloat16", "int8")


def _block(sym: Any, inputs: Any, params: dict[str, Any], ctx: Any) -> Any:
    from mxnet import gluon

    block = gluon.SymbolBlock(sym, inputs)
    block.collect_params().load_dict(params, ctx=ctx, cast_dtype=True, dtype_source="saved")
    block.hybridize(**HYBRIDIZE)
    return block


def to_bfloat16(net: Network, ctx: Any = None) -> Any:
    """An inference block computing in bfloat16 where AMP deems it safe (convolutions, dense layers),
    in float32 elsewhere; it takes and returns float32 `mxnet.np` arrays."""
    import mxnet as mx
    from mxnet.contrib import amp

    ctx = ctx or mx.cpu()
    inputs, sym, params = traced(net)
    converted = amp.convert_symbol(sym, "bfloat16", data_names=[i.name for i in inputs], cast_optional_params=False)
    return _block(converted.as_np_ndarray(), inputs, params, ctx)


def to_int8(net: Network, calibration: Any, batch_size: int = 32, ctx: Any = None) -> Any:
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
    return _block(qsym.as_np_ndarray(), inputs, {**qargs, **qauxs}, ctx)
