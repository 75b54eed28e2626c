"""The benchmark's PyTorch peer (bench/torch_zoo.py, issue 25): every zoo spec translated into a torch module
with torchvision's counts where torchvision has the network, archspec's analysis elsewhere, and the outputs of
archspec's built network once its weights are copied in."""
import numpy as onp
import pytest
import yaml

from archspec import load_spec, summarize
from conftest import ROOT, SPECS

pytestmark = pytest.mark.slow  # importing torch takes seconds; the zoo's translations tens of seconds


@pytest.fixture(scope="module", autouse=True)
def peers():
    """torch, torchvision and the peer (bench/torch_zoo.py), imported when a test here runs, not when the suite is
    collected: the fast run (-m "not slow") then never loads torch, whose import takes seconds and whose 300,000
    objects every later garbage collection would walk."""
    global torch, torchvision, copy_from_gluon, counts, loss, torch_network
    torch = pytest.importorskip("torch")
    torchvision = pytest.importorskip("torchvision")
    from torch_zoo import copy_from_gluon, counts, loss, torch_network


def torchvision_models():
    """The zoo specs torchvision builds, as it builds them (the first convolution and the classifier of D2L's
    VGG-11, one grayscale channel and 10 classes, swapped in: torchvision's own layers, D2L's sizes)."""
    models = torchvision.models
    vgg = models.vgg11(weights=None, num_classes=10)
    vgg.features[0] = torch.nn.Conv2d(1, 64, 3, padding=1)
    return {"googlenet-torchvision": models.googlenet(weights=None, aux_logits=False, init_weights=False),
            "mobilenetv2": models.mobilenet_v2(weights=None),
            "efficientnet-b0": models.efficientnet_b0(weights=None),
            "inception-v3": models.inception_v3(weights=None, aux_logits=True, init_weights=False),
            "vgg11": vgg}


def test_the_peers_counts_are_torchvisions_where_it_has_the_network():
    for name, model in torchvision_models().items():
        assert counts(torch_network(load_spec(ROOT / "specs" / f"{name}.yaml"))) == counts(model), name


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_every_zoo_spec_has_a_peer_with_its_counts(path):
    """The other specs (D2L's own networks: resnet18, alexnet and densenet as the book builds them, with conv
    biases and its classifier sizes, are not torchvision's) against archspec's analysis."""
    spec = load_spec(path)
    summary = summarize(spec)
    assert counts(torch_network(spec)) == (summary.params, summary.state)


def randomised(net, seed=0):
    """Weights at the scale of a trained network (He-like for weights, batch norm's around 1), so that every
    layer's output depends on its input."""
    from mxnet import np as mnp

    from archspec.gluon.compat import params_by_path

    rng = onp.random.default_rng(seed)
    for path, p in params_by_path(net).items():
        role, shape = path.rsplit(".", 1)[-1], p.shape
        if role in ("gamma", "running_var"):
            value = rng.uniform(0.5, 1.5, shape)
        elif role in ("beta", "bias", "running_mean"):
            value = rng.uniform(-0.2, 0.2, shape)
        else:
            value = rng.normal(0, (2 / max(1, int(onp.prod(shape[1:])))) ** 0.5, shape)
        p.set_data(mnp.array(value.astype("float32")))
    return net


def same_outputs(spec_or_path, batch=2, training=False):
    from mxnet import autograd
    from mxnet import np as mnp

    from archspec.gluon.build import build_model
    from archspec.gluon.compat import params_by_path

    built = randomised(build_model(spec_or_path))
    peer = torch_network(built.spec)
    copy_from_gluon(peer, {k: v.data().asnumpy() for k, v in params_by_path(built).items()})
    x = onp.random.default_rng(1).uniform(size=(batch,) + built.spec.input.shape).astype("float32")
    peer.train(training)
    if training:  # batch statistics
        with autograd.record():
            ours = built(mnp.array(x))
        ours = [o.asnumpy() for o in (ours if isinstance(ours, (tuple, list)) else [ours])]
        theirs = peer(torch.from_numpy(x))
        theirs = [t.detach().numpy() for t in (theirs if isinstance(theirs, tuple) else [theirs])]
    else:
        ours = [built(mnp.array(x)).asnumpy()]
        with torch.no_grad():
            theirs = [peer(torch.from_numpy(x)).numpy()]
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        assert a.shape == b.shape and abs(a).max() > 1e-3
        assert abs(a - b).max() <= 1e-4 * abs(a).max(), (abs(a - b).max(), abs(a).max())


# Between them these use every kind the zoo uses: grouped and depthwise convolutions, batch norm as a layer
# and inside a conv, relu6, swish, sigmoid, squeeze-and-excitation gates (merge mul), residual adds, concat,
# dense connections, drop_path, LRN, average pools, dropout, flatten, auxiliary heads, input normalisation.
SAMPLE = ("googlenet", "googlenet-bn", "googlenet-se", "googlenet-depthwise", "googlenet-imagenet-aux",
          "densenet", "mobilenetv2", "efficientnet-b0", "resnet18", "resnet18-v2", "resnext", "nin", "lenet")


@pytest.mark.parametrize("name", SAMPLE)
def test_the_peer_computes_the_built_networks_outputs(name):
    same_outputs(ROOT / "specs" / f"{name}.yaml")


def test_in_training_too_with_batch_statistics():
    same_outputs(ROOT / "specs" / "googlenet-bn.yaml", batch=4, training=True)  # no dropout: the same draws


def test_the_newer_kinds_translate(write_spec):
    """layernorm over channels, layer_scale, gelu, hard_sigmoid/hard_swish, scale, conv_transpose, upsample,
    padding same and per side, global max pooling: none of them in the zoo yet."""
    spec = {"name": "kinds", "input": {"channels": 3, "height": 16, "width": 16}, "stages": {"s": [
        {"conv": {"channels": 8, "kernel": 3, "stride": 2, "padding": "same", "activation": "hard_swish"}},
        {"layernorm": None}, {"gelu": None}, {"layer_scale": 0.5},
        {"conv": {"channels": 8, "kernel": 3, "padding": {"top": 1, "bottom": 0, "left": 2, "right": 1},
                  "activation": "hard_sigmoid"}},
        {"scale": 2.0},
        {"conv_transpose": {"channels": 4, "kernel": 4, "stride": 2, "padding": 1}},
        {"upsample": {"scale": 2}}, {"global_max_pool": None},
        {"dense": {"units": 5, "activation": "gelu"}}]}}
    path = write_spec(yaml.safe_dump(spec))
    summary = summarize(load_spec(path))
    assert counts(torch_network(load_spec(path))) == (summary.params, summary.state)
    same_outputs(path)


def test_the_loss_adds_the_auxiliary_heads_weighted():
    peer = torch_network(load_spec(ROOT / "specs" / "googlenet-imagenet-aux.yaml")).train()
    outputs = peer(torch.rand(2, 3, 224, 224))
    labels = torch.tensor([1, 2])
    f = torch.nn.functional.cross_entropy
    assert len(outputs) == 3 and torch.allclose(loss(peer, outputs, labels), f(outputs[0], labels)
                                                + 0.3 * f(outputs[1], labels) + 0.3 * f(outputs[2], labels))
