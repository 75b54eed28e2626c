"""Graph rewrites (archspec/gluon/rewrites.py): each computes what the plain build computes, outputs and gradients,
and keeps the parameters in the spec's layout, so checkpoints pass between them both ways."""
import json

import numpy as onp
import onnxruntime
import pytest
from mxnet import autograd, gluon, np, npx
from mxnet.gluon import nn

from archspec import InputError, build_model
from archspec.cli import main
from archspec.gluon.compat import params_by_path, use_global_stats
from archspec.gluon.convert import apply, convert
from archspec.gluon.export import export
from archspec.gluon.precision import for_inference
from archspec.gluon.rewrites import Rewrites
from conftest import ROOT
from reference import copy_params, googlenet, materialise

SMALL = {"input.height": 32, "input.width": 32}  # the same layers, less arithmetic
TOLERANCE = 1e-5  # largest difference, relative to the array's largest value (or 1)

# An Inception block with batch norm: three 1x1 convolutions read its input (fused), one 3x3 reads the pool's.
INCEPTION_BN = """
name: inception-bn
input: {channels: 3, height: 12, width: 12}
defaults: {conv: {activation: relu, batchnorm: true}}
stages:
  body:
    - conv: {channels: 8, kernel: 3, padding: 1}
    - inception: {c1: 4, c2: [6, 8], c3: [2, 4], c4: 4}
  head:
    - global_avg_pool: {}
    - dense: {units: 5}
"""


def _difference(a, b):
    return float(onp.abs(a - b).max() / max(1.0, float(onp.abs(a).max())))


def _pair(spec, rewrites, overrides=None):
    """The plain network and the rewritten one, in float64 (so that the comparison sees the rewrite, not float32's
    rounding), with the same weights and batch norm statistics that are not the identity."""
    plain = build_model(spec, overrides, rewrites="none")
    rewritten = build_model(spec, overrides, rewrites=rewrites)
    rng = onp.random.default_rng(0)
    for name, p in params_by_path(plain).items():
        if name.endswith(("gamma", "beta", "running_mean", "running_var", "bias")):
            p.set_data(np.array(rng.uniform(0.8, 1.2, p.shape) if name.endswith(("gamma", "running_var"))
                                else rng.uniform(-0.2, 0.2, p.shape)).astype("float32"))
    for net in (plain, rewritten):
        net.cast("float64")
    _copy(plain, rewritten)
    x = np.array(rng.uniform(size=(2,) + plain.spec.input.shape))
    return plain, rewritten, x


def _copy(source, target):
    """The weights of `source` into `target`, by their paths in the spec."""
    for name, p in params_by_path(target).items():
        p.set_data(params_by_path(source)[name].data())


def _run(block, net, x, train):
    """Outputs and every gradient of (outputs**2).sum(), in training or inference mode."""
    with autograd.record(train_mode=train):
        y = block(x)
        loss = (y * y).sum()
    loss.backward()
    return y.asnumpy(), {k: p.grad().asnumpy() for k, p in params_by_path(net).items() if p.grad_req != "null"}


def _operators(block, x):
    block(x)
    return [node["op"] for node in json.loads(block._cached_graph[1].tojson())["nodes"]]


def _assert_same(expected, got):
    (y0, g0), (y1, g1) = expected, got
    assert _difference(y0, y1) < TOLERANCE
    assert g0.keys() == g1.keys()
    assert max(_difference(g0[k], g1[k]) for k in g0) < TOLERANCE


def _check_fused(spec, overrides=None):
    plain, fused, x = _pair(spec, "fuse-siblings", overrides)
    assert _operators(fused, x).count("Convolution") < _operators(plain, x).count("Convolution")
    for train in (True, False):
        _assert_same(_run(plain, plain, x, train), _run(fused, fused, x, train))


def _check_folded(spec, overrides=None):
    plain, folded, x = _pair(spec, "fold-batchnorm", overrides)
    # MXNet's BatchNorm differentiates as in training unless told to use its running statistics
    plain.apply(lambda b: use_global_stats(b) if isinstance(b, nn.BatchNorm) else None)
    inference = for_inference(folded, "fp32")
    assert "BatchNorm" in _operators(plain, x) and "BatchNorm" not in _operators(inference, x)
    _assert_same(_run(plain, plain, x, False), _run(inference, folded, x, False))
    _assert_same(_run(plain, plain, x, False), _run(for_inference(plain, "fp32"), plain, x, False))


def test_fused_sibling_convolutions_give_the_plain_outputs_and_gradients(write_spec):
    _check_fused(write_spec(INCEPTION_BN))


def test_folded_batch_norm_gives_the_plain_inference_outputs_and_gradients(write_spec):
    _check_folded(write_spec(INCEPTION_BN))


@pytest.mark.slow
# not resnext: in D2L's block the projection carries the stride that the first 1x1 has not, so nothing is fused
@pytest.mark.parametrize("spec", ["googlenet", "googlenet-bn"])
def test_fused_siblings_on_the_zoo(spec):
    _check_fused(ROOT / "specs" / f"{spec}.yaml", SMALL)


@pytest.mark.slow
@pytest.mark.parametrize("spec", ["googlenet-bn", "resnet18"])
def test_folded_batch_norm_on_the_zoo(spec):
    _check_folded(ROOT / "specs" / f"{spec}.yaml", SMALL)


def _check_onednn(spec, overrides=None):
    """oneDNN's graph computes in float32 only: its outputs against the plain network's in float32."""
    plain, fast = build_model(spec, overrides, rewrites="none"), build_model(spec, overrides, rewrites="onednn")
    _copy(plain, fast)
    x = np.array(onp.random.default_rng(1).uniform(size=(2,) + plain.spec.input.shape).astype("float32"))
    block = for_inference(fast, "fp32")
    assert "_sg_mkldnn_conv" in _operators(block.fast, x)  # the partitioned graph, over copies of the weights
    assert _difference(plain(x).asnumpy(), block(x).asnumpy()) < TOLERANCE
    # The gradients of inference (a saliency map) in float64: in float32, MXNet 1.9.1's gradients in inference
    # mode differ between two plain networks with the same weights (by 3e-4 on googlenet), in training mode not.
    for net in (plain, fast):
        net.cast("float64")
    x = x.astype("float64")
    _assert_same(_run(plain, plain, x, False), _run(block, fast, x, False))


def test_onednn_inference_gives_the_plain_outputs_and_gradients(write_spec):
    _check_onednn(write_spec(INCEPTION_BN))


@pytest.mark.slow
@pytest.mark.parametrize("spec", ["googlenet", "googlenet-bn", "resnet18", "mobilenetv2"])
def test_onednn_on_the_zoo(spec):
    _check_onednn(ROOT / "specs" / f"{spec}.yaml", SMALL)


RESIDUAL = """
name: residual
input: {channels: 3, height: 8, width: 8}
defaults: {conv: {batchnorm: true}}
stages:
  body:
    - conv: {channels: 8, kernel: 3, padding: 1, activation: relu}
    - parallel:
        merge: add
        branches: [[], [{conv: {channels: 8, kernel: 3, padding: 1, activation: relu6}}, {conv: {channels: 8, kernel: 1}}]]
    - parallel: {merge: add, branches: [[], [global_avg_pool]]}  # broadcast: N x 8 x 8 x 8 + N x 8 x 1 x 1
  head: [global_avg_pool, {dense: 4}]
"""


def test_residual_sums_run_in_onednns_layout_and_fuse_into_the_convolution(write_spec):
    """A sum of equal shapes runs through `elemwise_add` (oneDNN's sum keeps its blocked layout, where numpy's add
    reorders both operands to NCHW), in training too, and oneDNN's inference graph fuses it into the convolution
    and batch norm before it (MobileNetV2's and ResNet's residual), as it fuses ReLU6 (clip); a broadcasting sum
    stays numpy's. Same values either way."""
    path = write_spec(RESIDUAL)
    plain = _pair(path, "none")[0]
    operators = _operators(plain, np.zeros((2, 3, 8, 8), dtype="float64"))
    assert operators.count("elemwise_add") == 1
    assert "_npi_add" in operators  # the broadcast
    numpy_sums = build_model(path, rewrites="none")
    numpy_sums.apply(lambda b: setattr(b, "_same_shapes", False) if hasattr(b, "_same_shapes") else None)
    numpy_sums.cast("float64")
    _copy(plain, numpy_sums)
    x = np.array(onp.random.default_rng(5).uniform(size=(2, 3, 8, 8)))
    for train in (True, False):
        _assert_same(_run(numpy_sums, numpy_sums, x, train), _run(plain, plain, x, train))
    fused = _operators(for_inference(build_model(path), "fp32").fast, np.zeros((2, 3, 8, 8)))  # the default: onednn
    assert "elemwise_add" not in fused and "clip" not in fused


def test_checkpoints_pass_between_plain_and_rewritten_networks_both_ways(write_spec, tmp_path):
    path = write_spec(INCEPTION_BN)
    plain, rewritten = build_model(path, rewrites="none"), build_model(path, rewrites="all")
    assert list(params_by_path(plain)) == list(params_by_path(rewritten))
    x = np.array(onp.random.default_rng(2).uniform(size=(2,) + plain.spec.input.shape).astype("float32"))
    for source, target in ((plain, rewritten), (rewritten, plain)):
        source.save_parameters(str(tmp_path / "w.params"))
        target.load_parameters(str(tmp_path / "w.params"))
        assert sorted(npx.load(str(tmp_path / "w.params"))) == sorted(params_by_path(plain))  # the spec's names
        assert _difference(for_inference(source, "fp32")(x).asnumpy(), for_inference(target, "fp32")(x).asnumpy()) \
            < TOLERANCE


def test_exports_of_the_rewritten_network_give_the_plain_outputs(write_spec, tmp_path):
    path = write_spec(INCEPTION_BN)
    plain, rewritten = build_model(path, rewrites="none"), build_model(path, rewrites="all")
    _copy(plain, rewritten)
    x = onp.random.default_rng(3).uniform(size=(2,) + plain.spec.input.shape).astype("float32")
    expected = plain(np.array(x)).asnumpy()
    symbol, params = export(rewritten, tmp_path / "net", "mxnet")
    imported = gluon.SymbolBlock.imports(str(symbol), ["data"], str(params))
    assert _difference(expected, imported(np.array(x)).asnumpy()) < TOLERANCE
    (model,) = export(rewritten, tmp_path / "net.onnx", "onnx")
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    got = onnxruntime.InferenceSession(str(model), options).run(None, {"data": x})[0]
    assert _difference(expected, got) < 1e-4  # the export's promise (README)


def test_rewrites_are_named_and_a_wrong_name_is_refused(write_spec, capsys):
    assert Rewrites.parse("default") == Rewrites.parse(None) == Rewrites(False, False, True)  # onednn: measured
    assert Rewrites.parse("fuse-siblings,onednn") == Rewrites(fuse_siblings=True, fold_batchnorm=False, onednn=True)
    assert Rewrites.parse("none") == Rewrites(False, False, False)
    assert Rewrites.parse("all") == Rewrites(True, True, True)
    with pytest.raises(InputError, match="fuse-siblings, fold-batchnorm, onednn"):
        Rewrites.parse("fold-bn")
    path = write_spec(INCEPTION_BN)
    assert main(["export", str(path), "--rewrites", "fold-bn", "-o", str(path.with_suffix(".onnx")),
                 "--format", "onnx"]) == 1
    assert "--rewrites fold-bn: expected" in capsys.readouterr().err
    assert not path.with_suffix(".onnx").exists()


@pytest.mark.slow
def test_the_seeds_weights_give_the_seeds_outputs_through_every_rewrite():
    """The seed's GoogLeNet (D2L's imperative code), its weights copied in its own order into a rewritten build."""
    seed = materialise(googlenet(10), (2, 1, 32, 32))
    x = np.array(onp.random.default_rng(4).uniform(size=(2, 1, 32, 32)).astype("float32"))
    expected = seed(x).asnumpy()
    for rewrites in ("fuse-siblings,fold-batchnorm", "all"):
        net = build_model(ROOT / "specs" / "googlenet.yaml", SMALL, rewrites=rewrites)
        copy_params(seed, net)
        assert _difference(expected, net(x).asnumpy()) < TOLERANCE  # the fused graph
        assert _difference(expected, for_inference(net, "fp32")(x).asnumpy()) < TOLERANCE


@pytest.mark.slow
def test_converted_weights_give_the_source_librarys_outputs_through_every_rewrite(tmp_path):
    """torchvision's GoogLeNet (convolution + batch norm everywhere, Inception's sibling 1x1s) converted once, loaded
    into rewritten builds: fused, folded and oneDNN's graphs give torchvision's outputs."""
    torch = pytest.importorskip("torch")
    torchvision = pytest.importorskip("torchvision")
    from test_convert import SIZE, _close, _images, _normalised, _randomise_torch

    model = _randomise_torch(torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=False))
    x = _images(2, 1)
    with torch.no_grad():
        expected = model(torch.from_numpy(_normalised(x))).numpy()
    torch.save(model.state_dict(), tmp_path / "ref.pth")
    spec = ROOT / "specs" / "googlenet-torchvision.yaml"
    plain = build_model(spec, SIZE, rewrites="none")
    apply(plain, convert(plain, "torch", tmp_path / "ref.pth"))
    plain.save_parameters(str(tmp_path / "w.params"))  # the converted file, in the spec's layout
    for rewrites in ("fuse-siblings,fold-batchnorm", "onednn"):
        net = build_model(spec, SIZE, rewrites=rewrites)
        net.load_parameters(str(tmp_path / "w.params"))
        assert _close(net(np.array(x)).asnumpy(), expected)
        assert _close(for_inference(net, "fp32")(np.array(x)).asnumpy(), expected)


def test_the_inference_block_leaves_an_eager_network_eager(write_spec):
    """oneDNN's graph is traced from the network; one built with `hybridize=False` (to step through it) stays so."""
    from archspec.gluon.compat import is_hybridized

    net = build_model(write_spec(RESIDUAL), hybridize=False)
    x = np.array(onp.random.default_rng(6).uniform(size=(2, 3, 8, 8)).astype("float32"))
    block = for_inference(net, "fp32")
    assert not is_hybridized(net)
    assert _difference(net(x).asnumpy(), block(x).asnumpy()) < TOLERANCE
