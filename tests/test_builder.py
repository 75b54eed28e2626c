"""The spec-built GoogLeNet is the seed's GoogLeNet: same layers, shapes, parameters and outputs."""
import subprocess
import sys

import numpy as onp
import pytest
from mxnet import np, npx
from reference import copy_params, googlenet, materialise

from archspec import SpecError, build_model, load_spec, summarize
from conftest import ROOT

GOOGLENET = ROOT / "specs" / "googlenet.yaml"
# The D2L chapter's layer summary on a 1x96x96 input.
STAGE_SHAPES = [(64, 24, 24), (192, 12, 12), (480, 6, 6), (832, 3, 3), (1024, 1, 1), (10,)]


@pytest.fixture(scope="module")
def pair():
    npx.set_np()
    ref = materialise(googlenet(10), (1, 1, 96, 96))
    net = build_model(GOOGLENET, hybridize=False)
    copy_params(ref, net)
    return ref, net


def test_stage_names_and_shapes_match_the_book(pair):
    _, net = pair
    x = np.zeros((1, 1, 96, 96))
    assert list(net._children) == ["b1", "b2", "b3", "b4", "b5", "head"]
    for stage, shape in zip(net, STAGE_SHAPES):
        x = stage(x)
        assert x.shape == (1,) + shape
    assert net.b3 is net[2]


def test_parameter_count_and_shapes_in_order(pair):
    ref, net = pair
    count = sum(p.data().size for p in net.collect_params().values())
    assert count == 5_977_530  # D2L's GoogLeNet for 10 classes
    assert [p.shape for p in net.collect_params().values()] == [p.shape for p in ref.collect_params().values()]


@pytest.mark.parametrize("hybridize", [False, True])
def test_outputs_equal_with_the_same_weights(pair, hybridize):
    ref, net = pair
    x = np.random.uniform(size=(4, 1, 96, 96))
    if hybridize:
        net.hybridize()
    diff = onp.abs(ref(x).asnumpy() - net(x).asnumpy()).max()
    assert diff < 1e-4


def test_gradients_equal_the_seeds_and_branches_join_in_onednns_layout(pair):
    """The branches are joined by MXNet's Concat, whose oneDNN kernel keeps the blocked layout (numpy's
    concatenate, which the seed uses, has none): the same values forward and backward."""
    from mxnet import autograd

    ref, net = pair
    x = np.random.uniform(size=(4, 1, 96, 96))
    grads = []
    for model in (ref, net):
        with autograd.record():
            loss = (model(x) ** 2).sum()
        loss.backward()
        grads.append([p.grad().asnumpy() for p in model.collect_params().values()])
    assert all(onp.abs(a - b).max() <= 1e-4 * (1 + onp.abs(a).max()) for a, b in zip(*grads))
    built = build_model(GOOGLENET)
    built(x)
    graph = built._cached_graph[1].tojson()
    assert '"Concat"' in graph and "_npi_concatenate" not in graph


def test_overrides_change_the_built_network(tmp_path):
    net = build_model(GOOGLENET, {"stages.head.0.units": 100, "input.height": 64, "input.width": 64})
    assert net(np.zeros((2, 1, 64, 64))).shape == (2, 100)


def test_default_build_is_hybridized_and_xavier_initialised():
    net = build_model(GOOGLENET)
    assert net._active  # hybridized
    w = net.b1[0].weight.data().asnumpy()
    # mxnet.init.Xavier(): uniform on +-sqrt(3 / mean(fan_in, fan_out)), as D2L initialises GoogLeNet
    bound = (3 / ((1 * 49 + 64 * 49) / 2)) ** 0.5
    assert bound * 0.95 < onp.abs(w).max() <= bound
    assert not net.b1[0].bias.data().asnumpy().any()  # biases start at zero


def test_a_stage_name_that_clashes_with_gluon_is_a_spec_error(write_spec):
    from archspec import SpecError
    path = write_spec("name: t\ninput: {channels: 1, height: 8, width: 8}\nstages:\n  forward:\n    - flatten\n")
    with pytest.raises(SpecError, match="stage name 'forward' clashes"):
        build_model(path)


AUX = """name: tapped
input: {channels: 1, height: 16, width: 16}
stages:
  body:
    - conv: {channels: 4, kernel: 3, padding: 1, activation: relu}
    - conv: {channels: 8, kernel: 3, stride: 2, padding: 1, activation: relu}
  head: [global_avg_pool, {dense: 3}]
aux:
  side: {after: body.0, layers: [global_avg_pool, {dense: 3}]}
  late: {after: body, weight: 0.5, layers: [flatten, {dense: 2}]}
"""


@pytest.mark.parametrize("hybridize", [True, False])
def test_auxiliary_heads_run_only_while_training(write_spec, hybridize):
    from mxnet import autograd

    net = build_model(write_spec(AUX), hybridize=hybridize)
    x = np.random.uniform(size=(2, 1, 16, 16))
    main = net(x)
    assert main.shape == (2, 3)
    with autograd.record():
        outputs = net(x)
        loss = sum(o.sum() for o in outputs[1:])  # the heads' losses alone
    loss.backward()
    main_t, side, late = outputs
    # each head sees the activation at its tap, and the main output is unchanged by the heads
    assert onp.allclose(side.asnumpy(), net.side(net.body[0](x)).asnumpy(), atol=1e-6)
    assert onp.allclose(late.asnumpy(), net.late(net.body(x)).asnumpy(), atol=1e-6)
    assert onp.allclose(main_t.asnumpy(), main.asnumpy(), atol=1e-6)
    assert net.body[0].weight.grad().asnumpy().any()  # the heads' gradients reach the trunk
    assert not net.head[1].weight.grad().asnumpy().any()  # and only through the tapped layers
    with autograd.record(train_mode=False):
        assert net(x).shape == (2, 3)  # predict mode: main output only
    assert net.spec.aux["late"].weight == 0.5


def test_auxiliary_heads_are_saved_and_loaded_with_the_network(write_spec, tmp_path):
    a, b = build_model(write_spec(AUX)), build_model(write_spec(AUX))
    a.save_parameters(str(tmp_path / "a.params"))
    b.load_parameters(str(tmp_path / "a.params"))
    assert onp.array_equal(a.side[1].weight.data().asnumpy(), b.side[1].weight.data().asnumpy())


@pytest.mark.parametrize("after, message", [
    ("b9", "no stage 'b9' to tap"), ("body.2", "stage body has 2 layers (0 to 1); cannot tap after layer 2"),
    ("body.x", "string should match pattern")])
def test_an_auxiliary_head_must_tap_an_existing_layer(write_spec, after, message):
    from archspec import SpecError

    path = write_spec(AUX.replace("after: body.0", f"after: {after}"))
    with pytest.raises(SpecError) as err:
        load_spec(path)
    (p,) = err.value.problems
    assert (p.line, p.col, p.path) == (9, 17, ("aux", "side", "after")) and message in p.message.lower()


def test_onednn_fusion_for_inference_keeps_the_outputs():
    """Gluon's own `optimize_for` (README: +7% at batch 1) works on a built network and changes no output."""
    net, fused = build_model(GOOGLENET), build_model(GOOGLENET, hybridize=False)
    copy_params(net, fused)
    fused.optimize_for(np.zeros((1, 1, 96, 96)), backend="MKLDNN", static_alloc=True, static_shape=True)
    x = np.random.uniform(size=(2, 1, 96, 96))
    assert onp.abs(net(x).asnumpy() - fused(x).asnumpy()).max() < 1e-5


@pytest.mark.slow  # 3-19 s: the fast run stays near a minute on a quick machine
def test_the_readmes_custom_kind_is_one_register_call(tmp_path):
    """The README's own example: a kind defined in user code validates, analyses and builds, and MXNet agrees."""
    readme = (ROOT / "README.md").read_text()
    example = readme[readme.index("```python\nfrom typing import ClassVar"):].split("```")[1].removeprefix("python")
    spec = tmp_path / "mish.yaml"
    spec.write_text("name: m\ninput: {channels: 1, height: 8, width: 8}\n"
                    "stages:\n  body: [{conv: {channels: 4, kernel: 3}}, mish, flatten, {dense: 3}]\n")
    code = example + f"""
from archspec import build_model, load_spec, summarize
from mxnet import np
summary = summarize(load_spec({str(spec)!r}))
net = build_model({str(spec)!r})
x = np.ones((2, 1, 8, 8))
assert summary.row("body.1").kind == "mish" and summary.row("body.1").output == (4, 6, 6)
assert net(x).shape == (2, 3)
assert sum(p.data().size for p in net.collect_params().values()) == summary.params
print("ok")
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-3000:]


def test_modern_activations_compute_their_formulas(write_spec):
    """relu6, hard_sigmoid and hard_swish (MobileNetV2/V3) as the papers define them, on a ramp through -8..8."""
    path = write_spec("name: a\ninput: {channels: 1, height: 1, width: 17}\nstages:\n"
                      "  r6: [{activation: relu6}]\n  hs: [{activation: hard_sigmoid}]\n")
    x = onp.linspace(-8, 8, 17, dtype="float32").reshape(1, 1, 1, 17)
    net = build_model(path)
    relu6 = onp.minimum(onp.maximum(x, 0), 6)
    assert onp.allclose(net.r6(np.array(x)).asnumpy(), relu6)
    assert onp.allclose(net(np.array(x)).asnumpy(), onp.minimum(onp.maximum(relu6 + 3, 0), 6) / 6)
    swish = build_model(write_spec("name: s\ninput: {channels: 1, height: 1, width: 17}\nstages:\n"
                                   "  s: [{conv: {channels: 1, kernel: 1, activation: hard_swish}}]\n", "s.yaml"))
    swish.s[0][0].weight.set_data(np.ones((1, 1, 1, 1)))
    swish.s[0][0].bias.set_data(np.zeros(1))
    assert onp.allclose(swish(np.array(x)).asnumpy(), x * onp.clip(x + 3, 0, 6) / 6)


def test_upsampling_by_scale_or_to_a_size(write_spec):
    path = write_spec("name: u\ninput: {channels: 1, height: 2, width: 3}\nstages:\n"
                      "  nearest: [{upsample: {scale: 2}}]\n"
                      "  bilinear: [{upsample: {size: [7, 11], mode: bilinear, align_corners: true}}]\n")
    s = summarize(load_spec(path))
    assert [r.output for r in s.stages] == [(1, 4, 6), (1, 7, 11)]
    net = build_model(path)
    x = onp.arange(6, dtype="float32").reshape(1, 1, 2, 3)
    assert onp.array_equal(net.nearest(np.array(x)).asnumpy(), x.repeat(2, axis=2).repeat(2, axis=3))
    ramp = onp.add.outer(onp.linspace(0, 3, 4), onp.linspace(0, 5, 6)).astype("float32").reshape(1, 1, 4, 6)
    # bilinear with aligned corners reproduces a linear ramp exactly, at any size
    expected = onp.add.outer(onp.linspace(0, 3, 7), onp.linspace(0, 5, 11)).reshape(1, 1, 7, 11)
    assert onp.allclose(net.bilinear(np.array(ramp)).asnumpy(), expected, atol=1e-5)


def test_aspp_image_pooling_branch_in_yaml(write_spec):
    """DeepLab's image pooling: average the whole map, 1x1 conv, upsample back to the input's size, concatenated
    with the other branches. The size comes from the block's input, so the block fits any map."""
    text = ("name: aspp\ninput: {channels: 8, height: 9, width: 12}\nblocks:\n  aspp:\n"
            "    args: {channels: 4, height: $in.height, width: $in.width}\n    layers:\n"
            "      - parallel:\n          merge: concat\n          branches:\n"
            "            - [{conv: {channels: $channels, kernel: 1}}]\n"
            "            - [{conv: {channels: $channels, kernel: 3, padding: 6, dilation: 6}}]\n"
            "            - [global_avg_pool, {conv: {channels: $channels, kernel: 1}},\n"
            "               {upsample: {size: [$height, $width], mode: bilinear}}]\n"
            "stages:\n  head: [aspp]\n")
    path = write_spec(text)
    assert summarize(load_spec(path)).row("head").output == (12, 9, 12)
    assert build_model(path)(np.zeros((2, 8, 9, 12))).shape == (2, 12, 9, 12)


def test_activation_formulas_are_documented_and_computed():
    """Issue 23, defect 8: the README states each modern activation's formula, and the built block computes it
    (hard_sigmoid was measured to be relu6(x + 3) / 6; gelu is the exact erf form torch's nn.GELU() computes)."""
    import math

    from archspec.gluon.layers import activation

    readme = " ".join((ROOT / "README.md").read_text().split())
    x = onp.linspace(-8, 8, 33, dtype="float32")
    relu6 = onp.clip(x, 0, 6)
    formulas = {"hard_sigmoid relu6(x + 3) / 6": ("hard_sigmoid", onp.clip(x + 3, 0, 6) / 6),
                "hard_swish x * relu6(x + 3) / 6": ("hard_swish", x * onp.clip(x + 3, 0, 6) / 6),
                "relu6 min(max(x, 0), 6)": ("relu6", relu6),
                "swish x * sigmoid(x)": ("swish", x / (1 + onp.exp(-x))),
                "gelu x * Phi(x)": ("gelu", onp.array([v * 0.5 * (1 + math.erf(v / math.sqrt(2))) for v in x]))}
    for text, (name, expected) in formulas.items():
        assert text in readme, text
        block = activation(name)
        block.initialize()
        assert onp.allclose(block(np.array(x)).asnumpy(), expected, atol=1e-5), name


def test_scale_layer_scale_layernorm_and_gelu_compute_their_formulas(write_spec):
    """Issue 23's new kinds, each against its formula written here: scale (its scalar short form), layer_scale
    (C factors starting at init), layernorm over the channels at each position (ConvNeXt's LayerNorm2d: C scales
    and C shifts), gelu (x * Phi(x))."""
    import math

    path = write_spec("name: k\ninput: {channels: 3, height: 2, width: 2}\nstages:\n"
                      "  a: [{scale: 0.17}]\n  b: [{layer_scale: 0.5}]\n  c: [{layernorm: {epsilon: 1.0e-6}}]\n"
                      "  d: [gelu]\n")
    net, s = build_model(path, hybridize=False), summarize(load_spec(path))
    assert [s.row(n).params for n in "abcd"] == [0, 3, 6, 0]
    x = onp.random.default_rng(0).normal(size=(2, 3, 2, 2)).astype("float32")
    assert onp.allclose(net.a(np.array(x)).asnumpy(), 0.17 * x)
    assert onp.allclose(net.b(np.array(x)).asnumpy(), 0.5 * x)
    mean, var = x.mean(axis=1, keepdims=True), x.var(axis=1, keepdims=True)
    assert onp.allclose(net.c(np.array(x)).asnumpy(), (x - mean) / onp.sqrt(var + 1e-6), atol=1e-5)
    erf = onp.vectorize(math.erf)
    assert onp.allclose(net.d(np.array(x)).asnumpy(), x * 0.5 * (1 + erf(x / math.sqrt(2))), atol=1e-5)


def test_conv_transpose_is_the_adjoint_of_a_convolution(write_spec):
    """conv_transpose: output size (n - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1,
    and its values those of a transposed convolution written here as a scatter (each input value adds its kernel
    at stride steps), padding cropped from each side."""
    path = write_spec("name: t\ninput: {channels: 2, height: 3, width: 4}\nstages:\n"
                      "  up: [{conv_transpose: {channels: 3, kernel: 3, stride: 2, padding: 1, output_padding: 1}}]\n")
    net, s = build_model(path, hybridize=False), summarize(load_spec(path))
    assert s.output == (3, 6, 8) and s.params == 2 * 3 * 9 + 3
    block = net.up[0]
    w = onp.random.default_rng(1).normal(size=(2, 3, 3, 3)).astype("float32")  # (in, out, kh, kw), as PyTorch
    b = onp.random.default_rng(2).normal(size=3).astype("float32")
    block.weight.set_data(np.array(w))
    block.bias.set_data(np.array(b))
    x = onp.random.default_rng(3).normal(size=(1, 2, 3, 4)).astype("float32")
    full = onp.zeros((3, (3 - 1) * 2 + 3 + 1, (4 - 1) * 2 + 3 + 1), "float32")  # output_padding on the far side
    for c in range(2):
        for i in range(3):
            for j in range(4):
                full[:, 2 * i:2 * i + 3, 2 * j:2 * j + 3] += x[0, c, i, j] * w[c]
    expected = full[:, 1:1 + 6, 1:1 + 8] + b[:, None, None]
    assert onp.allclose(net(np.array(x)).asnumpy()[0], expected, atol=1e-5)


@pytest.mark.parametrize("hybridize", [False, True])
def test_crop_center_cuts_each_branch_to_the_smallest_before_merging(write_spec, hybridize):
    """`parallel` with `crop: center` (U-Net's crop-and-copy): each branch's output is cut to the smallest height
    and width among the branches at ((h - H) // 2, (w - W) // 2), the odd row or column left below and right."""
    path = write_spec("name: c\ninput: {channels: 2, height: 7, width: 8}\nstages:\n  s:\n    - parallel:\n"
                      "        crop: center\n        branches: [[], [{avgpool: {kernel: [2, 3], stride: 1}}], "
                      "[{maxpool: {kernel: 3, stride: 1}}]]\n")
    s = summarize(load_spec(path))
    assert s.output == (6, 5, 6)  # the smallest height (max pool's 5) and width (avg pool's 6, max pool's 6)
    x = onp.random.default_rng(0).normal(size=(1, 2, 7, 8)).astype("float32")
    avg = onp.stack([[x[0, c, i:i + 2, j:j + 3].mean() for j in range(6)] for c in range(2) for i in range(6)])
    avg = avg.reshape(2, 6, 6)
    top = onp.stack([[x[0, c, i:i + 3, j:j + 3].max() for j in range(6)] for c in range(2) for i in range(5)])
    expected = onp.concatenate([x[0, :, 1:6, 1:7], avg[:, 0:5], top.reshape(2, 5, 6)])
    out = build_model(path, hybridize=hybridize)(np.array(x)).asnumpy()[0]
    assert onp.allclose(out, expected, atol=1e-6)
    bad = write_spec("name: c\ninput: {channels: 2, height: 7, width: 8}\nstages:\n  s:\n    - flatten\n"
                     "    - parallel: {crop: center, branches: [[], []]}\n")
    with pytest.raises(SpecError, match=r":6:.*crop needs images"):
        load_spec(bad)


def test_repeat_zero_leaves_the_entry_out(write_spec):
    """`repeat: ${reps - 1}` with reps 1 keeps no copy, as an entry whose `when` fails."""
    path = write_spec("name: r\ninput: {channels: 3, height: 4, width: 4}\nargs: {reps: 1}\nstages:\n"
                      "  s:\n    - conv: {channels: 4, kernel: 1}\n    - conv: {channels: 4, kernel: 1}\n"
                      "      repeat: ${reps - 1}\n")
    assert [r.path for r in summarize(load_spec(path)).rows if r.depth == 1] == ["s.0"]
    assert len([r for r in summarize(load_spec(path, ["reps=3"])).rows if r.depth == 1]) == 3


def test_drop_path_drops_whole_examples_in_training_reproducibly_and_is_the_identity_at_inference(write_spec):
    """drop_path: at inference the identity; while training each example is either all zeros or all scaled by
    1 / (1 - rate), and the same seed draws the same examples (a resumed run repeats them)."""
    import mxnet as mx
    from mxnet import autograd

    net = build_model(write_spec("name: d\ninput: {channels: 2, height: 3, width: 3}\nstages:\n"
                                 "  s: [{drop_path: 0.5}]\n"))
    x = np.array(onp.random.default_rng(0).uniform(1, 2, size=(64, 2, 3, 3)).astype("float32"))
    assert (net(x).asnumpy() == x.asnumpy()).all()

    def trained(seed):
        mx.random.seed(seed)
        with autograd.record(train_mode=True):
            return net(x).asnumpy()

    out = trained(7)
    kept = [bool(o.any()) for o in out]
    assert all(onp.allclose(o, 2 * xi) if k else not o.any() for o, xi, k in zip(out, x.asnumpy(), kept))
    assert 10 < sum(kept) < 54 and (trained(7) == out).all()


@pytest.mark.parametrize("padding, stride, pads", [
    ("same", 1, ((0, 1), (0, 1))),             # kernel 2: one row and column, below and on the right (PyTorch's)
    ("same", 2, ((0, 1), (0, 0))),             # TensorFlow's: ceil(7 / 2) = 4 rows, ceil(6 / 2) = 3 columns
    ("{top: 2, bottom: 0, left: 1, right: 3}", 1, ((2, 0), (1, 3))),
])
def test_same_and_per_side_padding_equal_a_padded_input(write_spec, padding, stride, pads):
    """`padding: same` and `{top, bottom, left, right}` equal NumPy's zero padding of the input followed by an
    unpadded convolution with the same weights."""
    from mxnet.gluon import nn

    path = write_spec("name: p\ninput: {channels: 2, height: 7, width: 6}\nstages:\n"
                      f"  s: [{{conv: {{channels: 3, kernel: 2, stride: {stride}, padding: {padding}}}}}]\n")
    net = build_model(path, hybridize=False)
    x = onp.random.default_rng(0).normal(size=(1, 2, 7, 6)).astype("float32")
    plain = nn.Conv2D(3, 2, stride, in_channels=2)
    plain.initialize()
    conv = net.s[0] if hasattr(net.s[0], "weight") else net.s[0][1]
    plain.weight.set_data(conv.weight.data())
    plain.bias.set_data(conv.bias.data())
    expected = plain(np.array(onp.pad(x, ((0, 0), (0, 0)) + pads))).asnumpy()
    out = net(np.array(x)).asnumpy()
    assert out.shape[1:] == summarize(load_spec(path)).output and onp.allclose(out, expected, atol=1e-5)
    if padding == "same":
        assert out.shape[2:] == (-(-7 // stride), -(-6 // stride))
