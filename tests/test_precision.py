"""bfloat16 and INT8 inference on a numpy-mode built network (MXNet's own Gluon converters refuse it)."""
import numpy as onp
from mxnet import np

from archspec import build_model
from archspec.gluon.precision import to_bfloat16, to_int8
from conftest import ROOT


def test_bfloat16_and_int8_blocks_take_and_return_numpy_arrays_close_to_float32():
    net = build_model(ROOT / "specs" / "googlenet.yaml")
    x = np.random.uniform(size=(4, 1, 96, 96))
    reference = net(x).asnumpy()
    scale = onp.abs(reference).max()
    for block, ops, tolerance in ((to_bfloat16(net), "amp_cast", 0.02),
                                  (to_int8(net, np.random.uniform(size=(16, 1, 96, 96))), "quantize", 0.1)):
        out = block(x)
        assert isinstance(out, np.ndarray) and out.dtype == onp.float32 and out.shape == (4, 10)
        assert ops in block._cached_graph[1].tojson()  # it really computes in reduced precision
        assert onp.abs(out.asnumpy() - reference).max() <= tolerance * scale
