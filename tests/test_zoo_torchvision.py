"""The zoo's modern CNN families against torchvision itself (issue 23): the same trainable parameters and
batch-norm statistics as torchvision's own model, and the same outputs once its weights are converted in."""
import re

import pytest
import yaml
from mxnet import np
from test_convert import MEAN, SIZE, STD, _close, _images, _randomise_torch

from archspec import load_spec, summarize
from archspec.gluon.build import build_model
from archspec.gluon.compat import params_by_path
from archspec.gluon.convert import apply, convert
from conftest import ROOT


def torch_counts(model):
    """(trainable parameters, running statistics) of a torch model, as torchvision builds it."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    state = sum(b.numel() for name, b in model.named_buffers() if name.rsplit(".", 1)[-1].startswith("running_"))
    return trainable, state


def spec_counts(name):
    summary = summarize(load_spec(ROOT / "specs" / f"{name}.yaml"))
    return summary.params, summary.state


@pytest.mark.slow  # importing torch takes seconds
def test_efficientnet_b0_counts_are_torchvisions():
    torchvision = pytest.importorskip("torchvision")
    model = torchvision.models.efficientnet_b0(weights=None)
    assert spec_counts("efficientnet-b0") == torch_counts(model) == (5_288_548, 42_016)


def torch_parity_float64(tmp_path, model, spec, swap, size=SIZE):
    """As test_convert's parity, in float64 on both sides: the deep residual networks here, with random
    batch-norm statistics, amplify float32 rounding (and a float32 normalised input) past 1e-4."""
    torch = pytest.importorskip("torch")
    model = _randomise_torch(model, size["input.height"]).double()
    x = _images(2, 1, size["input.height"])
    with torch.no_grad():
        expected = model(torch.from_numpy((x - MEAN[:, None, None]) / STD[:, None, None])).numpy()
    state = model.state_dict()
    torch.save(state, tmp_path / "ref.pth")
    net = build_model(ROOT / "specs" / spec, size)
    apply(net, convert(net, "torch", tmp_path / "ref.pth"))
    net.cast("float64")
    assert _close(net(np.array(x, dtype="float64")).asnumpy(), expected)

    a, b = swap  # the same file with two same-shaped arrays exchanged: a wrong mapping shows
    state[a], state[b] = state[b].clone(), state[a].clone()
    torch.save(state, tmp_path / "swapped.pth")
    net = build_model(ROOT / "specs" / spec, size)
    apply(net, convert(net, "torch", tmp_path / "swapped.pth"))
    net.cast("float64")
    assert not _close(net(np.array(x, dtype="float64")).asnumpy(), expected)


@pytest.mark.slow
def test_efficientnet_b0_outputs_are_torchvisions(tmp_path):
    torchvision = pytest.importorskip("torchvision")
    # Without stochastic depth, which would drop examples while the batch-norm statistics are measured in
    # training mode: statistics of another network, whose activations then grow to 1e4 and amplify float
    # rounding. It has no parameters, and is the identity at inference in both networks.
    model = torchvision.models.efficientnet_b0(weights=None, stochastic_depth_prob=0.0)
    torch_parity_float64(tmp_path, model, "efficientnet-b0.yaml",
                         ("features.2.0.block.3.1.running_var", "features.2.1.block.3.1.running_var"))


@pytest.mark.slow  # importing torch takes seconds
def test_inception_v3_counts_are_torchvisions():
    torchvision = pytest.importorskip("torchvision")
    model = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=False)
    assert spec_counts("inception-v3") == torch_counts(model) == (27_161_264, 36_224)


@pytest.mark.slow
def test_inception_v3_outputs_are_torchvisions(tmp_path):
    """At 301x301 (the auxiliary head needs 17x17 after Mixed_6e, the test images a multiple of 7); in eval
    mode both skip the auxiliary head, whose weights are converted all the same (every layer of the file must
    find its partner)."""
    torchvision = pytest.importorskip("torchvision")
    model = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=False)
    torch_parity_float64(tmp_path, model, "inception-v3.yaml",
                         ("Mixed_6c.branch7x7_1.bn.running_var", "Mixed_6d.branch7x7_1.bn.running_var"),
                         size={"input.height": 301, "input.width": 301})


@pytest.mark.slow  # importing torch takes seconds
def test_convnext_tiny_counts_are_torchvisions():
    torchvision = pytest.importorskip("torchvision")
    assert spec_counts("convnext-tiny") == torch_counts(torchvision.models.convnext_tiny(weights=None)) == (
        28_589_128, 0)


def in_registration_order(model):
    """torch's parameters in the order the spec's network registers them: a CNBlock registers its layer scale
    before its layers, the spec's block after them (the scale multiplies the branch's end)."""
    ordered, held = [], []
    for name, value in model.state_dict().items():
        if held and not name.startswith(held[0][0].rsplit(".", 1)[0] + "."):
            ordered, held = ordered + held, []
        (held if name.endswith("layer_scale") else ordered).append((name, value))
    return ordered + held


def copy_in_order(net, arrays):
    """Each of `arrays` into the next of the network's parameters, of the same size (a Linear's weight into a
    1x1 convolution's, a (C, 1, 1) layer scale into a (C,) one): a count or order that differs fails here."""
    params = list(params_by_path(net).values())
    assert len(params) == len(arrays)
    for param, (name, value) in zip(params, arrays):
        assert value.numel() == param.data().size, (name, param.name)
        param.set_data(np.array(value.numpy().reshape(param.shape), dtype="float64"))


@pytest.mark.slow
def test_convnext_tiny_outputs_are_torchvisions():
    """At 112x112, in float64, the layer scales and LayerNorms random (at 1e-6 the blocks would add nothing)."""
    torch = pytest.importorskip("torch")
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    model = torchvision.models.convnext_tiny(weights=None).double().eval()
    for name, value in model.named_parameters():
        if name.endswith("layer_scale") or (value.dim() == 1 and name.endswith("weight")):
            value.data.uniform_(0.3, 1.2)
        elif name.endswith("bias"):
            value.data.uniform_(-0.1, 0.1)
    x = _images(2, 1, SIZE["input.height"])
    with torch.no_grad():
        expected = model(torch.from_numpy((x - MEAN[:, None, None]) / STD[:, None, None])).numpy()
    arrays = in_registration_order(model)
    for swap in (False, True):  # two same-sized layer scales exchanged: a wrong pairing shows
        if swap:
            i, j = [k for k, (name, _) in enumerate(arrays) if name.endswith("layer_scale")][:2]
            arrays[i], arrays[j] = (arrays[i][0], arrays[j][1]), (arrays[j][0], arrays[i][1])
        net = build_model(ROOT / "specs" / "convnext-tiny.yaml", SIZE)
        net.cast("float64")
        copy_in_order(net, arrays)
        assert _close(net(np.array(x, dtype="float64")).asnumpy(), expected) != swap


def width_table(spec=None):
    """The rows (w, archspec, reference) of the README's width tables, counts as (trainable, state): those of
    mobilenetv2's table (w | archspec | torchvision), or with `spec` those of the rows naming it
    (w | spec | archspec | reference)."""
    text = (ROOT / "README.md").read_text().split("### Width variants", 1)[1].split("\n### ", 1)[0]
    rows = re.findall(r"^\| ([\d.]+) \| (?:`([\w-]+)` \| )?([\d,]+) \+ ([\d,]+) \| ([\d,]+) \+ ([\d,]+) \|$",
                      text, re.M)
    number = lambda cell: int(cell.replace(",", ""))  # noqa: E731
    return [(float(w), (number(a), number(b)), (number(c), number(d))) for w, name, a, b, c, d in rows
            if name == (spec or "")]


def test_the_readme_width_table_is_archspec():
    rows = width_table()
    assert [w for w, _, _ in rows] == [0.5, 0.75, 1.0, 1.25]
    for w, mine, reference in rows:
        summary = summarize(load_spec(ROOT / "specs" / "mobilenetv2.yaml", [f"width={w}"]))
        assert (summary.params, summary.state) == mine == reference


@pytest.mark.slow  # importing torch takes seconds
def test_the_readme_width_table_is_torchvision():
    torchvision = pytest.importorskip("torchvision")
    for w, _, reference in width_table():
        assert torch_counts(torchvision.models.mobilenet_v2(weights=None, width_mult=w)) == reference


def test_unscaled_is_a_count_the_width_leaves():
    spec = ("name: s\ninput: {channels: 3, height: 8, width: 8}\nwidth: 0.5\nwidth_divisor: 8\nstages:\n  s:\n"
            "    - conv: {channels: '${max(unscaled(1280), make_divisible(1280, 8))}', kernel: 1}\n"
            "    - conv: {channels: '${unscaled(24)}', kernel: 1}\n")
    summary = summarize(load_spec(yaml.safe_load(spec)))
    assert [summary.row(f"s.{i}").output[0] for i in range(2)] == [1280, 24]
