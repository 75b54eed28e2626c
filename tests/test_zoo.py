"""Every network of the zoo against an outside reference: d2l's own models, the D2L chapters' code
written in `reference.py`, or a published parameter count. All are built by the same `build_model`."""
import numpy as onp
import pytest
from d2l import mxnet as d2l
from mxnet import autograd, init, np, npx
from mxnet.gluon import nn
from reference import (RegNetX32, UNet, alexnet, anynet_params, copy_params, densenet, googlenet, materialise,
                       mobilenet_v2, nin, resnext, vgg)

from archspec import SpecError, build_model, load_spec, summarize
from conftest import ROOT


def spec_path(name):
    return ROOT / "specs" / f"{name}.yaml"


def counts(net):
    return sum(p.data().size for p in net.collect_params().values())


def assert_same_network(reference, name, batch=2, overrides=None):
    """Same parameter shapes in order, and the same outputs once the reference's weights are copied in."""
    spec = load_spec(spec_path(name), overrides)
    shape = (batch,) + spec.input.shape
    reference = materialise(reference, shape)
    net = build_model(spec, hybridize=False)
    copy_params(reference, net)
    x = np.random.uniform(size=shape)
    assert onp.abs(reference(x).asnumpy() - net(x).asnumpy()).max() < 1e-4
    return net


@pytest.mark.parametrize("name,make", [
    ("lenet", lambda: d2l.LeNet().net),
    pytest.param("alexnet", alexnet, marks=pytest.mark.slow),
    ("nin", nin),
    ("densenet", densenet),
    pytest.param("vgg11", vgg, marks=pytest.mark.slow),
], ids=["lenet", "alexnet", "nin", "densenet", "vgg11"])
def test_d2l_chapter_networks(name, make):
    npx.set_np()
    # VGG-11 at 96x96: the same layers with a smaller first dense layer (0.5 GB of weights less to hold twice)
    assert_same_network(make(), name, batch=1 if name == "vgg11" else 2,
                        overrides=["input.height=96", "input.width=96"] if name == "vgg11" else None)


@pytest.mark.slow
def test_resnet18_is_d2l_resnet18():
    npx.set_np()
    ref = d2l.resnet18(10)
    ref.initialize(init.Xavier())
    ref = materialise(ref, (2, 1, 28, 28))
    net = build_model(spec_path("resnet18"), hybridize=False)
    # d2l.Residual creates conv1, conv2, conv3, bn1, bn2; the spec's residual reads conv1+bn1, conv2+bn2, conv3.
    ordered = []
    for block in ref:
        residuals = [b for b in block if isinstance(b, d2l.Residual)] if isinstance(block, nn.Sequential) else []
        if not residuals:
            ordered += list(block.collect_params().values())
        for r in residuals:
            for part in (r.conv1, r.bn1, r.conv2, r.bn2, r.conv3):
                ordered += list(part.collect_params().values()) if part is not None else []
    assert_same_outputs(ref, net, ordered, (2, 1, 28, 28))


def assert_same_outputs(ref, net, ordered, shape):
    """`ordered`: the reference's parameters in the order the spec's network creates them; copied in, the two
    networks give the same outputs."""
    mine = list(net.collect_params().values())
    assert [p.shape for p in ordered] == [p.shape for p in mine]
    for s, d in zip(ordered, mine):
        d.set_data(s.data())
    x = np.random.uniform(size=shape)
    assert onp.abs(ref(x).asnumpy() - net(x).asnumpy()).max() < 1e-4


def reference_convs():
    """(in_channels, out_channels) of every convolution of the seed's GoogLeNet."""
    ref = materialise(googlenet(10), (1, 1, 96, 96))
    return [(p.shape[1], p.shape[0]) for name, p in ref.collect_params().items()
            if name.endswith("weight") and len(p.shape) == 4]


def test_googlenet_bn_adds_batch_norm_to_every_convolution():
    s = summarize(load_spec(spec_path("googlenet-bn")))
    channels = sum(out for _, out in reference_convs())
    assert (s.params, s.state) == (5_977_530 + 2 * channels, 2 * channels)
    assert counts(build_model(spec_path("googlenet-bn"))) == s.params + s.state


def test_googlenet_28_runs_on_native_fashion_mnist():
    s = summarize(load_spec(spec_path("googlenet-28")))
    assert [r.output for r in s.stages] == [(64, 28, 28), (192, 14, 14), (480, 7, 7), (832, 7, 7), (1024, 1, 1),
                                            (10,)]
    assert s.params == 5_977_530 - 64 * 7 * 7 + 64 * 3 * 3  # the seed's, with a 3x3 stem
    assert build_model(spec_path("googlenet-28"))(np.zeros((2, 1, 28, 28))).shape == (2, 10)


def test_original_googlenet_for_imagenet():
    s = summarize(load_spec(spec_path("googlenet-imagenet")))
    assert s.params == 6_998_552  # Szegedy et al. 2014 / Caffe bvlc_googlenet without auxiliary heads
    assert [r.output for r in s.stages][:4] == [(64, 56, 56), (192, 28, 28), (480, 14, 14), (832, 7, 7)]
    assert {r.kind for r in s.rows} >= {"lrn", "dropout"}
    net = build_model(spec_path("googlenet-imagenet"))
    assert net(np.zeros((1, 3, 224, 224))).shape == (1, 1000)


def test_original_googlenet_with_its_auxiliary_classifiers():
    s = summarize(load_spec(spec_path("googlenet-imagenet-aux")))
    assert s.params == 13_378_280  # Caffe bvlc_googlenet train_val.prototxt, both side heads included
    assert [(r.path, r.input, r.output) for r in s.aux] == [("aux1", (512, 14, 14), (1000,)),  # after 4a
                                                            ("aux2", (528, 14, 14), (1000,))]  # after 4d
    assert s.macs == summarize(load_spec(spec_path("googlenet-imagenet"))).macs  # inference skips them
    net = build_model(spec_path("googlenet-imagenet-aux"))
    assert counts(net) == 13_378_280
    x = np.random.uniform(size=(1, 3, 224, 224))
    assert net(x).shape == (1, 1000)
    with autograd.record():
        assert [o.shape for o in net(x)] == [(1, 1000)] * 3


def test_googlenet_in_the_torchvision_layout():
    s = summarize(load_spec(spec_path("googlenet-torchvision")))
    assert s.params == 6_624_904  # torchvision.models.googlenet(aux_logits=False): trainable parameters
    assert [r.output for r in s.stages] == [(64, 56, 56), (192, 28, 28), (480, 14, 14), (832, 7, 7),
                                            (1024, 1, 1), (1000,)]
    net = build_model(spec_path("googlenet-torchvision"))
    bn = net.b1[0][1]
    assert bn._kwargs["eps"] == 1e-3 and net.b1[0][0].bias is None
    assert counts(net) == s.params + s.state


def test_squeeze_and_excitation_exercise():
    s = summarize(load_spec(spec_path("googlenet-se")))
    gates = [(256, 16), (480, 30), (512, 32), (512, 32), (512, 32), (528, 33), (832, 52), (832, 52), (1024, 64)]
    assert s.params == 5_977_530 + sum(c * r + r + r * c + c for c, r in gates)
    assert s.row("b3.0").kind == "inception_se" and s.row("b3.0.1").kind == "se_gate"
    assert [r.output for r in s.stages] == [r.output for r in summarize(load_spec(spec_path("googlenet"))).stages]


@pytest.mark.slow
def test_mobilenet_v2_is_torchvisions():
    """The published count (torchvision.models.mobilenet_v2: 3,504,872), and the same outputs as MobileNetV2
    written in plain Gluon once its weights are copied in."""
    npx.set_np()
    s = summarize(load_spec(spec_path("mobilenetv2")))
    assert s.params == 3_504_872
    ref = mobilenet_v2()
    ref.initialize(init.Xavier())
    ref = materialise(ref, (1, 3, 224, 224))
    net = build_model(spec_path("mobilenetv2"), hybridize=False)
    copy_params(ref, net)
    x = np.random.uniform(size=(1, 3, 224, 224))
    assert onp.abs(ref(x).asnumpy() - net(x).asnumpy()).max() < 1e-4
    assert counts(net) == s.params + s.state


def test_resnext_is_d2l_resnext_blocks():
    npx.set_np()
    ref = resnext()
    ref.initialize(init.Xavier())
    ref = materialise(ref, (2, 1, 96, 96))
    net = build_model(spec_path("resnext"), hybridize=False)
    ordered = [p for block in ref for p in (block.ordered_params() if hasattr(block, "ordered_params")
                                            else block.collect_params().values())]
    assert_same_outputs(ref, net, ordered, (2, 1, 96, 96))


@pytest.mark.parametrize("growth", [16, 48])
def test_densenet_transitions_halve_their_input_at_any_growth_rate(growth):
    """D2L's transition_block(num_channels // 2): 64 + 4 g channels in, half of that out, and so on."""
    s = summarize(load_spec(spec_path("densenet"), [f"args.growth_rate={growth}"]))
    transitions = [r for r in s.rows if r.depth == 1 and r.kind == "transition"]
    channels, expected = 64, []
    for _ in transitions:
        channels += 4 * growth
        expected.append(((channels,), (channels // 2,)))
        channels //= 2
    assert [(r.input[:1], r.output[:1]) for r in transitions] == expected
    assert s.row("dense").output[0] == channels + 4 * growth


def test_depthwise_exercise():
    s = summarize(load_spec(spec_path("googlenet-depthwise")))
    inception_params = 5_977_530 - 3_200 - 114_944 - 10_250  # stem, b2 and head stay
    blocks = [(192, 256), (256, 480), (480, 512), (512, 512), (512, 512), (512, 528), (528, 832), (832, 832),
              (832, 1024)]
    assert s.params == 3_200 + 114_944 + 10_250 + sum(c * 49 + c + c * o + o for c, o in blocks)
    assert s.params < inception_params
    net = build_model(spec_path("googlenet-depthwise"))
    assert net.b3[0][0]._kwargs["num_group"] == 192


def test_inception_block_in_yaml_equals_the_builtin(write_spec):
    npx.set_np()
    text = (ROOT / "specs/googlenet.yaml").read_text()
    head, _, _ = text.partition("stages:")
    block_text = head.replace("name: googlenet\n", "name: inception-block\n") + """blocks:
  my_inception:          # the D2L Inception, written in YAML
    args: {c1: null, c2_reduce: null, c2: null, c3_reduce: null, c3: null, c4: null}
    layers:
      - parallel:
          merge: concat
          branches:
            - [conv: {channels: $c1, kernel: 1}]
            - [conv: {channels: $c2_reduce, kernel: 1}, conv: {channels: $c2, kernel: 3, padding: 1}]
            - [conv: {channels: $c3_reduce, kernel: 1}, conv: {channels: $c3, kernel: 5, padding: 2}]
            - [maxpool: {kernel: 3, stride: 1, padding: 1}, conv: {channels: $c4, kernel: 1}]
stages:
  body:
    - conv: {channels: 192, kernel: 3, padding: 1}
    - my_inception: {c1: 64, c2_reduce: 96, c2: 128, c3_reduce: 16, c3: 32, c4: 32}
  head: [global_avg_pool, dense: $num_classes]
"""
    builtin_text = block_text.replace(
        "- my_inception: {c1: 64, c2_reduce: 96, c2: 128, c3_reduce: 16, c3: 32, c4: 32}",
        "- inception: {c1: 64, c2: [96, 128], c3: [16, 32], c4: 32}")
    block_net = build_model(write_spec(block_text, "block.yaml"), hybridize=False)
    builtin_net = build_model(write_spec(builtin_text, "builtin.yaml"), hybridize=False)
    copy_params(builtin_net, block_net)
    x = np.random.uniform(size=(2, 1, 96, 96))
    assert onp.abs(block_net(x).asnumpy() - builtin_net(x).asnumpy()).max() == 0
    assert repr(block_net.body[1]).replace("my_inception", "inception") == repr(builtin_net.body[1])


def test_width_and_depth_multipliers():
    half = summarize(load_spec(spec_path("googlenet"), ["width=0.5"]))
    assert [r.output[0] for r in half.stages] == [32, 96, 240, 416, 512, 10]
    deep = summarize(load_spec(spec_path("resnet18"), ["depth=2"]))
    assert [r.path for r in deep.rows if r.depth == 1 and r.path.startswith("b2.")] == ["b2.0", "b2.1", "b2.2", "b2.3"]
    rounded = load_spec(spec_path("googlenet"), ["width=0.3", "width_divisor=8"])
    # 64 * 0.3 = 19.2: the nearest multiple of 8 is 16, more than 10% below, so MobileNet's rounding gives 24
    assert summarize(rounded).row("b1").output[0] == 24  # (issue 23: was 16, the README's promise broken)


def test_python_overrides_and_arguments():
    net = build_model(spec_path("googlenet"), num_classes=100)
    assert net(np.zeros((1, 1, 96, 96))).shape == (1, 100)
    net = build_model(spec_path("googlenet"), {"stages.b3.0.c1": 96, "input.height": 64, "input.width": 64})
    assert net.b3[0](np.zeros((1, 192, 8, 8))).shape == (1, 96 + 128 + 32 + 32, 8, 8)


@pytest.mark.parametrize("block,usage,where,fragment", [
    ("    args: {channels: null}\n    layers: [conv: {channels: $chanels, kernel: 1}]\n",
     "    - b: {channels: 8}\n", "$chanels", "unknown argument '$chanels'; did you mean 'channels'?"),
    ("    args: {channels: null}\n    layers: [conv: {channels: $channels, kernel: 1}]\n",
     "    - b: {chanels: 8}\n", "chanels: 8", "block b has no argument 'chanels'; did you mean 'channels'?"),
    ("    args: {channels: null}\n    layers: [conv: {channels: $channels, kernel: 1}]\n",
     "    - b: {}\n", "- b: {}", "block b needs argument 'channels'"),
    ("    args: {channels: null}\n    layers: [conv: {channels: $channels, kernel: 1}]\n",
     "    - b: {channels: -8}\n", "channels: -8", "greater than or equal to 1"),
    ("    layers: [b: {}]\n", "    - b\n", "b: {}", "block 'b' uses itself"),
], ids=["typo in block", "unknown argument", "missing argument", "bad value at the use", "recursion"])
def test_block_errors_point_at_the_yaml(write_spec, block, usage, where, fragment):
    text = "name: t\ninput: {channels: 1, height: 8, width: 8}\nblocks:\n  b:\n" + block + "stages:\n  s:\n" + usage
    line = text[:text.index(where)].count("\n") + 1
    with pytest.raises(SpecError) as e:
        load_spec(write_spec(text))
    assert any(p.line == line and fragment in p.message for p in e.value.problems), (line, str(e.value))


def test_no_zoo_specific_code_in_the_library():
    import re
    source = " ".join(p.read_text() for p in (ROOT / "archspec").glob("*.py")).lower()
    zoo = [p.stem.replace("-", "_") for p in (ROOT / "specs").glob("*.yaml") if p.stem != "googlenet"]
    assert len(zoo) >= 10
    for name in zoo + ["vgg", "resnet", "vgg_block", "nin_block"]:
        assert not re.search(rf"\b{name}\b", source), name


def test_regnetx32_is_d2ls_regnetx32():
    """The chapter's RegNetX32 (AnyNet.stem, AnyNet.stage, AnyNet.__init__ over d2l.ResNeXtBlock): the same
    parameters in number and shape, and the same outputs with its weights copied in."""
    npx.set_np()
    ref = materialise(RegNetX32(), (2, 1, 96, 96))
    net = build_model(spec_path("regnetx32"), hybridize=False)
    assert counts(ref) == counts(net) == sum(r.params + r.state for r in summarize(load_spec(
        spec_path("regnetx32"))).stages)
    assert_same_outputs(ref, net, anynet_params(ref), (2, 1, 96, 96))


def test_the_anynet_space_at_its_own_values_is_regnetx32():
    rows = lambda name: [(r.path, r.kind, r.output, r.params, r.state, r.macs)  # noqa: E731
                         for r in summarize(load_spec(spec_path(name))).rows]
    assert rows("anynet-space") == rows("regnetx32")


def test_se_gate_keeps_its_published_count_under_a_specs_conv_defaults(write_spec):
    """Issue 23, defect 2: under `defaults: {conv: {bias: false, batchnorm: true}}` (a ResNeXt's convolutions)
    the library's se_gate stays Hu et al.'s two fully connected layers with biases: C*C/r + C/r + C/r*C + C
    parameters and no state (SE-ResNeXt-50 came out at 27,575,944 + 100,320 instead of 27,559,896 + 68,224)."""
    from archspec import load_spec, summarize

    path = write_spec("name: t\ninput: {channels: 64, height: 8, width: 8}\n"
                      "defaults:\n  conv: {bias: false, batchnorm: true}\nstages:\n  s:\n    - se_gate\n")
    row = summarize(load_spec(path)).row("s.0")
    c, r = 64, 16
    assert (row.params, row.state) == (c * (c // r) + c // r + (c // r) * c + c, 0)


def test_unet_is_the_papers_shapes_and_count():
    """572x572 in, 388x388 out (the paper's Figure 1), and the parameters of the paper's network in plain Gluon."""
    npx.set_np()
    summary = summarize(load_spec(spec_path("unet")))
    assert (summary.input, summary.output) == ((1, 572, 572), (2, 388, 388))
    reference = UNet()
    reference.initialize()
    assert (summary.params, summary.state) == (counts(reference), 0) == (31_030_658, 0)
    crops = [row for row in summary.rows if row.kind.startswith("level")]
    assert [(row.input[1:], row.output) for row in crops] == [
        ((568, 568), (128, 392, 392)), ((280, 280), (256, 200, 200)), ((136, 136), (512, 104, 104)),
        ((64, 64), (1024, 56, 56))]


@pytest.mark.parametrize("width", [4, pytest.param(64, marks=pytest.mark.slow)])
def test_unet_outputs_are_the_papers(width):
    """At 188x188, the smallest input all four levels take (a 4x4 output), the paper's widths and a sixteenth of them:
    the reference's weights copied in, the same outputs."""
    npx.set_np()
    reference = UNet(width=width)
    reference.initialize(init.Xavier())
    net = build_model(spec_path("unet"), hybridize=True, overrides=[f"channels={width}", "input.height=188",
                                                                    "input.width=188"])
    assert_same_outputs(reference, net, list(reference.collect_params().values()), (2, 1, 188, 188))
