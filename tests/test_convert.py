"""Converting other libraries' weights into a spec's parameters (archspec.gluon.convert).

Parity: each reference network is built by its own library (torchvision, MXNet's model zoo, GluonCV) with
random weights and random batch-norm statistics, saved in that library's own format, converted, and the
spec's network must give the library's outputs on the same input. Swapping two arrays of the same shape in the
file must break that equality: the test can fail."""
import json
import struct
import subprocess
import sys
import textwrap

import numpy as onp
import pytest
from mxnet import np

from archspec import InputError
from archspec.cli import main
from archspec.gluon.build import build_model, load_parameters
from archspec.gluon.compat import params_by_path
from archspec.gluon.convert import apply, convert
from conftest import ROOT

SIZE = {"input.height": 112, "input.width": 112}  # every network here runs at any size: a quicker test


def write_safetensors(path, arrays):
    """A .safetensors file as the format describes it (header sorted by name, as the reference writer does)."""
    header, chunks, offset = {}, [], 0
    for name in sorted(arrays):
        data = onp.ascontiguousarray(arrays[name], dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(arrays[name].shape), "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + b"".join(chunks))


def torch_like(net):
    """The arrays of an archspec network under PyTorch's names for LeNet (`conv1.weight`, `fc1.bias`, ...)."""
    names = ["conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias", "fc1.weight", "fc1.bias", "fc2.weight",
             "fc2.bias", "fc3.weight", "fc3.bias"]
    arrays = [p.data().asnumpy() for p in params_by_path(net).values()]
    return dict(zip(names, arrays))


def randomised(net, seed=0):
    rng = onp.random.default_rng(seed)
    for path, p in params_by_path(net).items():
        p.set_data(np.array(rng.normal(0, 0.5, p.shape).astype("float32")))
    return net


def test_safetensors_by_structure_and_shape_whatever_the_names_order(tmp_path):
    source = randomised(build_model(ROOT / "specs/lenet.yaml", hybridize=False))
    arrays = torch_like(source)
    write_safetensors(tmp_path / "lenet.safetensors", arrays)
    target = build_model(ROOT / "specs/lenet.yaml")
    conversion = convert(target, "safetensors", tmp_path / "lenet.safetensors")
    apply(target, conversion)
    x = np.array(onp.random.default_rng(1).normal(size=(2, 1, 28, 28)).astype("float32"))
    assert onp.array_equal(target(x).asnumpy(), source(x).asnumpy())
    assert conversion.origin["classifier.0.weight"] == "fc1.weight"
    assert conversion.origin["features.2.bias"] == "conv2.bias"


def test_an_incomplete_file_is_refused_naming_the_layers(tmp_path):
    arrays = torch_like(randomised(build_model(ROOT / "specs/lenet.yaml", hybridize=False)))
    del arrays["fc3.weight"], arrays["fc3.bias"]
    write_safetensors(tmp_path / "short.safetensors", arrays)
    with pytest.raises(InputError, match=r"dense layer 10x84: the spec has 1 \(classifier.2\), the file 0"):
        convert(build_model(ROOT / "specs/lenet.yaml"), "safetensors", tmp_path / "short.safetensors")


def test_arrays_that_are_no_layer_are_named(tmp_path):
    arrays = torch_like(randomised(build_model(ROOT / "specs/lenet.yaml", hybridize=False)))
    arrays["bn.running_mean"] = onp.zeros(6, "float32")  # a batch norm without its other arrays
    write_safetensors(tmp_path / "odd.safetensors", arrays)
    with pytest.raises(InputError, match="bn: a batch norm needs gamma .* the file has bn.running_mean"):
        convert(build_model(ROOT / "specs/lenet.yaml"), "safetensors", tmp_path / "odd.safetensors")


def test_a_truncated_safetensors_file_is_refused(tmp_path):
    arrays = torch_like(randomised(build_model(ROOT / "specs/lenet.yaml", hybridize=False)))
    write_safetensors(tmp_path / "cut.safetensors", arrays)
    data = (tmp_path / "cut.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[:-100])
    with pytest.raises(InputError, match="truncated"):
        convert(build_model(ROOT / "specs/lenet.yaml"), "safetensors", tmp_path / "cut.safetensors")


def test_cli_convert_writes_parameters_the_network_loads(tmp_path, capsys):
    source = randomised(build_model(ROOT / "specs/lenet.yaml", hybridize=False), seed=3)
    write_safetensors(tmp_path / "lenet.safetensors", torch_like(source))
    out = tmp_path / "lenet.params"
    assert main(["convert", str(ROOT / "specs/lenet.yaml"), "--from", "safetensors",
                 str(tmp_path / "lenet.safetensors"), "-o", str(out)]) == 0
    assert "10 arrays (5 layers)" in capsys.readouterr().err
    net = build_model(ROOT / "specs/lenet.yaml")
    load_parameters(net, out)
    x = np.ones((1, 1, 28, 28))
    assert onp.array_equal(net(x).asnumpy(), source(x).asnumpy())
    assert main(["convert", str(ROOT / "specs/lenet.yaml"), "--from", "keras", str(out), "-o",
                 str(tmp_path / "x.params")]) == 1
    assert "--from keras: expected one of mxnet, gluoncv, torch, safetensors" in capsys.readouterr().err
    assert not (tmp_path / "x.params").exists()


# --- parity with the source libraries ------------------------------------------------------------------------

def _images(count, seed, size=112):
    """Blocky random images (7x7 blown up to `size`, plus noise): white noise alone would not do, as the
    global average pool of every network here gives nearly the same features for any two noise images."""
    rng = onp.random.default_rng(seed)
    coarse = rng.normal(0, 1, (count, 3, 7, 7))
    return (onp.kron(coarse, onp.ones((size // 7, size // 7))) + rng.normal(0, 0.1, (count, 3, size, size))
            ).astype("float32")


MEAN, STD = onp.array([0.485, 0.456, 0.406]), onp.array([0.229, 0.224, 0.225])


def _normalised(x):
    """What the source libraries take: the spec's ImageNet normalisation, which the built network applies itself."""
    return ((x - MEAN[:, None, None]) / STD[:, None, None]).astype("float32")


def _close(actual, expected):
    """Equal within 1e-4 (relative to the largest output), for outputs that differ between the images."""
    assert onp.abs(expected[0] - expected[1]).max() > 1e-3  # the outputs depend on the input
    return onp.abs(actual - expected).max() < 1e-4 * max(1, onp.abs(expected).max())


def _randomise_torch(model, size=112):
    """Random batch-norm scales and shifts, and running statistics measured on images then perturbed: random
    statistics alone would drown the signal (the features would not depend on the input)."""
    import torch

    torch.manual_seed(0)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for module in norms:
        module.weight.data.uniform_(0.5, 1.5)
        module.bias.data.uniform_(-0.2, 0.2)
        module.reset_running_stats()
        module.momentum = None  # a plain average over the batches seen
    model.train()
    with torch.no_grad():
        model(torch.from_numpy(_images(8, 10, size)))
    for module in norms:
        module.running_mean += 0.1 * module.running_var.sqrt() * torch.randn_like(module.running_mean)
        module.running_var *= torch.empty_like(module.running_var).uniform_(0.8, 1.25)
    return model.eval()


def _swap(arrays, names):
    a, b = names
    assert arrays[a].shape == arrays[b].shape
    arrays[a], arrays[b] = arrays[b], arrays[a]


def _torch_parity(tmp_path, model, spec, swap):
    torch = pytest.importorskip("torch")
    model = _randomise_torch(model)
    x = _images(2, 1)
    with torch.no_grad():
        expected = model(torch.from_numpy(_normalised(x))).numpy()
    state = model.state_dict()
    torch.save(state, tmp_path / "ref.pth")
    net = build_model(ROOT / "specs" / spec, SIZE)
    apply(net, convert(net, "torch", tmp_path / "ref.pth"))
    assert _close(net(np.array(x)).asnumpy(), expected)

    a, b = swap  # the same file with two same-shaped arrays exchanged: a wrong mapping shows
    state[a], state[b] = state[b].clone(), state[a].clone()
    torch.save(state, tmp_path / "swapped.pth")
    apply(net, convert(net, "torch", tmp_path / "swapped.pth"))
    assert not _close(net(np.array(x)).asnumpy(), expected)


@pytest.mark.slow
def test_torchvision_googlenet(tmp_path):
    torchvision = pytest.importorskip("torchvision")
    model = torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=False)
    _torch_parity(tmp_path, model, "googlenet-torchvision.yaml",
                  ("inception4b.branch3.0.conv.weight", "inception4c.branch3.0.conv.weight"))


@pytest.mark.slow
def test_torchvision_mobilenet_v2(tmp_path):
    torchvision = pytest.importorskip("torchvision")
    model = torchvision.models.mobilenet_v2(weights=None)
    _torch_parity(tmp_path, model, "mobilenetv2.yaml", ("features.5.conv.1.1.running_var",
                                                        "features.6.conv.1.1.running_var"))


@pytest.mark.slow
def test_torchvision_googlenet_from_safetensors(tmp_path):
    """The same weights as a safetensors file, whose arrays come sorted by name (`fc` before `inception3a`)."""
    torch = pytest.importorskip("torch")
    torchvision = pytest.importorskip("torchvision")
    model = _randomise_torch(torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=False))
    write_safetensors(tmp_path / "ref.safetensors", {k: v.numpy() for k, v in model.state_dict().items()
                                                     if v.is_floating_point()})
    x = _images(2, 2)
    with torch.no_grad():
        expected = model(torch.from_numpy(_normalised(x))).numpy()
    net = build_model(ROOT / "specs/googlenet-torchvision.yaml", SIZE)
    apply(net, convert(net, "safetensors", tmp_path / "ref.safetensors"))
    assert _close(net(np.array(x)).asnumpy(), expected)


def _randomise_gluon(model, seed=0, size=112):
    """As `_randomise_torch`, for a Gluon network in MXNet's classic mode."""
    import mxnet as mx
    from mxnet.gluon import nn

    rng = onp.random.default_rng(seed)
    norms = []
    model.apply(lambda block: norms.append(block) if isinstance(block, nn.BatchNorm) else None)
    for block in norms:
        block._kwargs["momentum"] = 0.0  # the running statistics become those of the next batch
        if block.gamma.grad_req != "null":  # the zoo's input normalisation fixes gamma and beta
            block.gamma.set_data(mx.nd.array(rng.uniform(0.5, 1.5, block.gamma.shape)))
            block.beta.set_data(mx.nd.array(rng.uniform(-0.2, 0.2, block.beta.shape)))
    with mx.autograd.train_mode():
        model(mx.nd.array(_images(8, 10, size)))
    for block in norms:
        block._kwargs["momentum"] = 0.9
        mean, var = block.running_mean.data().asnumpy(), block.running_var.data().asnumpy()
        block.running_mean.set_data(mx.nd.array(mean + 0.1 * onp.sqrt(var) * rng.normal(size=mean.shape)))
        block.running_var.set_data(mx.nd.array(var * rng.uniform(0.8, 1.25, var.shape)))
    return model


@pytest.mark.slow
def test_mxnet_model_zoo_resnet18_v2(tmp_path):
    import mxnet as mx
    from mxnet.gluon.model_zoo import vision

    with mx.util.np_array(False), mx.util.np_shape(False):
        mx.random.seed(0)
        model = vision.resnet18_v2()
        model.initialize(mx.init.Xavier())
        data = _images(2, 3)
        x = mx.nd.array(_normalised(data))
        model(x)
        _randomise_gluon(model)
        expected = model(x).asnumpy()
        model.save_parameters(str(tmp_path / "resnet18_v2.params"))
    net = build_model(ROOT / "specs/resnet18-v2.yaml", SIZE)
    conversion = convert(net, "mxnet", tmp_path / "resnet18_v2.params")
    assert len(conversion.arrays) == len(model._collect_params_with_prefix())
    apply(net, conversion)
    assert _close(net(np.array(data)).asnumpy(), expected)

    with mx.util.np_array(False), mx.util.np_shape(False):
        arrays = mx.nd.load(str(tmp_path / "resnet18_v2.params"))
        _swap(arrays, ("features.6.0.conv2.weight", "features.6.1.conv1.weight"))
        mx.nd.save(str(tmp_path / "swapped.params"), arrays)
    apply(net, convert(net, "mxnet", tmp_path / "swapped.params"))
    assert not _close(net(np.array(data)).asnumpy(), expected)


# GluonCV 0.10.5 refuses to import beside torch >= 2 (gluoncv/check.py); its reference is built in a process
# where torch cannot be imported.
_GLUONCV = textwrap.dedent("""
    import sys
    sys.modules["torch"] = None
    import mxnet as mx, numpy as onp
    from gluoncv.model_zoo import get_model
    from test_convert import _images, _normalised, _randomise_gluon
    mx.random.seed(0)
    model = get_model("googlenet", pretrained=False)
    model.initialize(mx.init.Xavier())
    images = _images(2, 4, 224)  # its last pool is a fixed 7x7: 224x224 only
    x = mx.nd.array(_normalised(images))
    model(x)
    _randomise_gluon(model, size=224)
    model.save_parameters(sys.argv[1] + "/googlenet.params")
    onp.save(sys.argv[1] + "/x.npy", images)
    onp.save(sys.argv[1] + "/y.npy", model(x).asnumpy())
""")


@pytest.mark.slow
def test_gluoncv_googlenet(tmp_path):
    import importlib.util

    if importlib.util.find_spec("gluoncv") is None:
        pytest.skip("GluonCV is not installed")
    subprocess.run([sys.executable, "-c", _GLUONCV, str(tmp_path)], check=True, cwd=ROOT / "tests",
                   env={"PYTHONPATH": str(ROOT / "tests"), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    x, expected = onp.load(tmp_path / "x.npy"), onp.load(tmp_path / "y.npy")
    net = build_model(ROOT / "specs/googlenet-torchvision.yaml")
    apply(net, convert(net, "gluoncv", tmp_path / "googlenet.params"))
    assert _close(net(np.array(x)).asnumpy(), expected)
