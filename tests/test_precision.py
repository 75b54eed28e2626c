"""bfloat16 and INT8 inference on a numpy-mode built network (MXNet's own Gluon converters refuse it), and
`--precision` on the command line: evaluate, export and train."""
import json
import os

import numpy as onp
import pytest
from mxnet import gluon, np

from archspec import build_model
from archspec.cli import main
from archspec.gluon import precision as precision_module
from archspec.gluon.build import load_parameters
from archspec.gluon.precision import for_inference, supports_bfloat16, to_bfloat16, to_int8
from archspec.train import Config, train
from archspec.train.data import load_idx_folder, to_input
from conftest import ROOT


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["bf16", "int8"])
def test_bfloat16_and_int8_blocks_take_and_return_numpy_arrays_close_to_float32(precision):
    if precision == "bf16" and not supports_bfloat16():
        pytest.skip("this CPU has no AVX-512 BF16 (oneDNN cannot create bfloat16 convolutions on it)")
    net = build_model(ROOT / "specs" / "googlenet.yaml")
    x = np.random.uniform(size=(4, 1, 96, 96))
    reference = net(x).asnumpy()
    scale = onp.abs(reference).max()
    if precision == "bf16":
        block, ops, tolerance = to_bfloat16(net), "amp_cast", 0.02
    else:
        block, ops, tolerance = to_int8(net, np.random.uniform(size=(16, 1, 96, 96))), "quantize", 0.1
    out = block(x)
    assert isinstance(out, np.ndarray) and out.dtype == onp.float32 and out.shape == (4, 10)
    assert ops in block._cached_graph[1].tojson()  # it really computes in reduced precision
    assert onp.abs(out.asnumpy() - reference).max() <= tolerance * scale


# --precision on the command line, on a small network that has learned something (LeNet on the real digits)

LENET = str(ROOT / "specs" / "lenet.yaml")


@pytest.fixture(scope="module")
def lenet(digits, tmp_path_factory):
    """LeNet trained 4 epochs on the digits, in float32: the parameters file."""
    out = tmp_path_factory.mktemp("lenet") / "run"
    config = Config(epochs=4, batch_size=32, lr=0.005, optimizer="adam", data_dir=str(digits))
    with open(os.devnull, "w") as quiet:
        train(LENET, out, config, stream=quiet)
    return out / "final.params"


def predictions(block, images, net):
    return block(to_input(images, (net.spec.input.height, net.spec.input.width), None)).asnumpy().argmax(1)


def calibration(digits, net, batches=8):
    """What the command line calibrates INT8 on by default: the first 8 batches of 32 training images."""
    images = load_idx_folder(digits, "train").images[:32 * batches]
    return to_input(images, (net.spec.input.height, net.spec.input.width), None)


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["bf16", "int8"])
def test_evaluate_and_export_in_reduced_precision_keep_the_float32_top1(precision, lenet, digits, tmp_path, capsys):
    if precision == "bf16" and not supports_bfloat16():
        pytest.skip("this CPU has no AVX-512 BF16")
    net = build_model(LENET)
    load_parameters(net, lenet)
    test = load_idx_folder(digits, "test")
    block = for_inference(net, precision, calibration(digits, net) if precision == "int8" else None)
    reduced, full = predictions(block, test.images, net), predictions(net, test.images, net)
    assert (reduced == full).mean() >= 0.98
    # the command line computes what the library computes
    more = ["--calibration-data", str(digits)] if precision == "int8" else []
    assert main(["evaluate", LENET, "--params", str(lenet), "--data-dir", str(digits), "--precision", precision,
                 *more]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["precision"] == precision and report["accuracy"] == pytest.approx((reduced == test.labels).mean())
    # and the exported graph loads back, without archspec, and predicts the same
    assert main(["export", LENET, "--params", str(lenet), "--precision", precision, *more, "-o",
                 str(tmp_path / "lenet")]) == 0
    imported = gluon.SymbolBlock.imports(str(tmp_path / "lenet-symbol.json"), ["data"],
                                         str(tmp_path / "lenet-0000.params"))
    assert (predictions(imported, test.images, net) == reduced).all()


RESIDUAL = """
name: small-resnet
input: {channels: 1, height: 28, width: 28}
stages:
  stem:
    - conv: {channels: 16, kernel: 3, padding: 1, batchnorm: true, activation: relu}
  body:
    - residual: {channels: 16}
    - residual: {channels: 32, stride: 2}
    - residual: {channels: 32}
  head:
    - global_avg_pool
    - dense: 10
"""
# the same network without its shortcuts: each residual block's first convolution alone
CHAIN = (RESIDUAL.replace("residual: {channels: 16}", "conv: {channels: 16, kernel: 3, padding: 1, batchnorm: true, "
                                                      "activation: relu}")
         .replace("residual: {channels: 32, stride: 2}", "conv: {channels: 32, kernel: 3, padding: 1, stride: 2, "
                                                         "batchnorm: true, activation: relu}")
         .replace("residual: {channels: 32}", "conv: {channels: 32, kernel: 3, padding: 1, batchnorm: true, "
                                              "activation: relu}"))


@pytest.mark.slow
def test_int8_keeps_the_float32_top1_of_a_residual_network_as_of_a_chain(digits, tmp_path, write_spec):
    """INT8 quantizes a residual sum and fuses it into the convolution before it (oneDNN's conv + sum), which moves
    a residual network's outputs further from float32 than a chain's (0.12 against 0.04 relative on ResNet-18 with
    random weights): on trained networks, its predictions must move about as little as the chain's do."""
    # Adam at 0.001 for 4 epochs: 0.75-0.94 test accuracy at 1-8 threads with AVX-512 or AVX2 kernels (at 0.005 for
    # 3 epochs it ranged from 0.20 to 0.97 with the thread count and the instruction set)
    config = Config(epochs=4, batch_size=32, lr=0.001, optimizer="adam", data_dir=str(digits))
    test = load_idx_folder(digits, "test")
    agreement = {}
    for name, text in [("residual", RESIDUAL), ("chain", CHAIN)]:
        spec = write_spec(text, f"{name}.yaml")
        with open(os.devnull, "w") as quiet:
            history, out = train(spec, tmp_path / name, config, stream=quiet)
        net = build_model(spec)
        load_parameters(net, out / "final.params")
        fp32 = predictions(net, test.images, net)
        int8 = predictions(for_inference(net, "int8", calibration(digits, net)), test.images, net)
        accuracy = (fp32 == test.labels).mean()
        assert accuracy == pytest.approx(history[-1]["test_acc"], abs=1e-6), name  # the network the run trained
        assert accuracy > 0.5, (name, accuracy)  # trained: agreement on a guessing network would say little
        assert abs((int8 == test.labels).mean() - accuracy) <= 0.04, name  # measured <= 0.025
        agreement[name] = (int8 == fp32).mean()
    # measured 0.956-0.983 for both over those settings; a broken quantized sum keeps far fewer
    assert min(agreement.values()) >= 0.93 and agreement["residual"] >= agreement["chain"] - 0.05, agreement


def test_bf16_is_refused_on_a_cpu_without_it_before_anything_is_written(digits, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(precision_module, "supports_bfloat16", lambda: False)
    out = tmp_path / "run"
    assert main(["train", LENET, "--data-dir", str(digits), "--precision", "bf16", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "avx512_bf16" in err and "Traceback" not in err and not out.exists()
    assert main(["export", LENET, "--precision", "bf16", "-o", str(tmp_path / "net")]) == 1
    assert "avx512_bf16" in capsys.readouterr().err and not list(tmp_path.iterdir())


def test_calibration_options_need_int8_and_onnx_needs_float32(tmp_path, capsys):
    assert main(["export", LENET, "--calibration-batches", "2", "-o", str(tmp_path / "net")]) == 1
    assert "apply to --precision int8" in capsys.readouterr().err
    assert main(["export", LENET, "--precision", "int8", "--format", "onnx", "-o", str(tmp_path / "net.onnx")]) == 1
    assert "--format mxnet" in capsys.readouterr().err and not list(tmp_path.iterdir())


@pytest.mark.slow
def test_bf16_training_learns_as_float32_does(digits, lenet, tmp_path, capsys):
    if not supports_bfloat16():
        pytest.skip("this CPU has no AVX-512 BF16")
    args = ["train", LENET, "--data-dir", str(digits), "--batch-size", "32", "--optimizer", "adam", "--lr", "0.005",
            "--epochs", "4"]
    assert main([*args, "--precision", "bf16", "--out", str(tmp_path / "bf16")]) == 0
    bf16 = json.loads((tmp_path / "bf16" / "metrics.json").read_text())[-1]["test_acc"]
    fp32 = json.loads((lenet.parent / "metrics.json").read_text())[-1]["test_acc"]
    assert json.loads((tmp_path / "bf16" / "config.json").read_text())["config"]["precision"] == "bf16"
    assert bf16 >= fp32 - 0.03  # the same run in float32 (the `lenet` fixture): within 3 points on 360 images


def test_int8_calibration_data_must_fit_the_network(digits, tmp_path, capsys):
    three = ["--set", "input.channels=3", "--precision", "int8", "--calibration-data", str(digits)]
    assert main(["export", LENET, *three, "-o", str(tmp_path / "net")]) == 1  # 1-channel digits, a 3-channel net
    assert "1 channel(s); lenet takes 3" in capsys.readouterr().err and not list(tmp_path.iterdir())


def test_calibration_images_of_the_wrong_channels_are_named_as_images(digits, tmp_path, capsys):
    """They were blamed on the labels file, which has no channels."""
    argv = ["export", str(ROOT / "specs" / "lenet.yaml"), "--set", "input.channels=3", "--precision", "int8",
            "--calibration-data", str(digits), "-o", str(tmp_path / "lenet")]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert f"--calibration-data {digits}: the calibration images (its training images) have 1 channel(s); lenet " \
           "takes 3" in err and "labels" not in err
    assert os.listdir(tmp_path) == []


def test_a_precision_slower_than_fp32_says_why(tmp_path):
    reason = precision_module.slower_than_fp32("bf16", mxnet_version="1.9.1")
    assert "slower than fp32" in reason and "AMX" in reason and "0.64x" in reason
    assert "0.77x" in precision_module.slower_than_fp32("bf16", training=True, mxnet_version="1.9.1")
    assert precision_module.slower_than_fp32("bf16", mxnet_version="2.0.0") is None
    without, with_vnni = tmp_path / "old", tmp_path / "new"
    without.write_text("flags\t\t: fpu sse avx2 avx512f avx512bw\n")
    with_vnni.write_text("flags\t\t: fpu sse avx2 avx512f avx512bw avx512_vnni\n")
    assert "no VNNI" in precision_module.slower_than_fp32("int8", cpuinfo=str(without))
    assert precision_module.slower_than_fp32("int8", cpuinfo=str(with_vnni)) is None
    assert precision_module.slower_than_fp32("fp32") is None


def test_choosing_bf16_warns_on_the_command_line(tmp_path, capsys):
    if not supports_bfloat16():
        pytest.skip("this CPU has no AVX-512 BF16 (bf16 is refused instead)")
    assert main(["export", LENET, "--precision", "bf16", "-o", str(tmp_path / "net")]) == 0
    err = capsys.readouterr().err
    assert "archspec: warning: --precision bf16 is slower than fp32" in err and "Warning" not in err


def test_choosing_int8_without_vnni_warns_on_the_command_line(digits, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(precision_module, "_flags", lambda cpuinfo: {"avx2", "avx512f"})  # a CPU without VNNI
    assert main(["export", LENET, "--precision", "int8", "--calibration-data", str(digits), "--calibration-batches",
                 "1", "-o", str(tmp_path / "net")]) == 0
    err = capsys.readouterr().err
    assert "archspec: warning: --precision int8: this CPU has no VNNI" in err and "Warning" not in err
