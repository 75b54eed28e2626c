"""The zoo's modern CNN families against torchvision itself (issue 23): the same trainable parameters and
batch-norm statistics as torchvision's own model, and the same outputs once its weights are converted in."""
import numpy as onp
import pytest
from mxnet import np
from test_convert import MEAN, SIZE, STD, _close, _images, _randomise_torch

from archspec import load_spec, summarize
from archspec.gluon.build import build_model
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


def test_efficientnet_b0_counts_are_torchvisions():
    torchvision = pytest.importorskip("torchvision")
    model = torchvision.models.efficientnet_b0(weights=None)
    assert spec_counts("efficientnet-b0") == torch_counts(model) == (5_288_548, 42_016)


def torch_parity_float64(tmp_path, model, spec, swap):
    """As test_convert's parity, in float64 on both sides: the deep residual networks here, with random
    batch-norm statistics, amplify float32 rounding (and a float32 normalised input) past 1e-4."""
    torch = pytest.importorskip("torch")
    model = _randomise_torch(model).double()
    x = _images(2, 1)
    with torch.no_grad():
        expected = model(torch.from_numpy((x - MEAN[:, None, None]) / STD[:, None, None])).numpy()
    state = model.state_dict()
    torch.save(state, tmp_path / "ref.pth")
    net = build_model(ROOT / "specs" / spec, SIZE)
    apply(net, convert(net, "torch", tmp_path / "ref.pth"))
    net.cast("float64")
    assert _close(net(np.array(x, dtype="float64")).asnumpy(), expected)

    a, b = swap  # the same file with two same-shaped arrays exchanged: a wrong mapping shows
    state[a], state[b] = state[b].clone(), state[a].clone()
    torch.save(state, tmp_path / "swapped.pth")
    net = build_model(ROOT / "specs" / spec, SIZE)
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
