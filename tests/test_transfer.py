"""Starting from learned weights: partial initialisation across variants (gluon.transfer), frozen stages and
per-stage learning rates (gluon.tuning), through build_model and `archspec train`."""
import numpy as onp
import pytest
import mxnet as mx
from mxnet import npx

from archspec import InputError
from archspec.cli import main
from archspec.gluon.build import build_model
from conftest import ROOT

GOOGLENET = ROOT / "specs" / "googlenet.yaml"
# LeNet with batch norm: a stage whose batch norm must stay in inference mode when frozen
LENET_BN = """
name: lenet-bn
input: {channels: 1, height: 28, width: 28}
args: {num_classes: 10}
stages:
  features:
    - conv: {channels: 6, kernel: 5, padding: 2, batchnorm: true, activation: relu}
    - maxpool: {kernel: 2, stride: 2}
    - conv: {channels: 16, kernel: 5, batchnorm: true, activation: relu}
    - maxpool: {kernel: 2, stride: 2}
  classifier:
    - dense: {units: 64, activation: relu}
    - dense: $num_classes
"""


@pytest.fixture(scope="module")
def googlenet_params(tmp_path_factory):
    path = tmp_path_factory.mktemp("googlenet") / "googlenet.params"
    build_model(GOOGLENET).save_parameters(str(path))
    return path


@pytest.mark.slow
def test_googlenet_into_five_classes_reports_exact_counts_and_strict_refuses(googlenet_params):
    net = build_model(GOOGLENET, {"num_classes": 5}, init=googlenet_params)
    assert net.transferred.report() == (f"transferred 114/116 arrays from {googlenet_params}; 2 initialised instead: "
                                        "head.0.weight (shape 10x1024 -> 5x1024), head.0.bias (shape 10 -> 5)")
    source = build_model(GOOGLENET, init=googlenet_params)
    assert onp.array_equal(net.b5[0].branch2[1].weight.data().asnumpy(),
                           source.b5[0].branch2[1].weight.data().asnumpy())
    with pytest.raises(InputError, match="--strict: transferred 114/116"):
        build_model(GOOGLENET, {"num_classes": 5}, init=googlenet_params, strict=True)


def test_googlenet_into_googlenet_se_by_structure_where_paths_moved(googlenet_params):
    net = build_model(ROOT / "specs" / "googlenet-se.yaml", init=googlenet_params)
    report = net.transferred
    assert (len(report.transferred), report.total, len(report.moved), len(report.unused)) == (116, 152, 108, 0)
    assert report.moved["b3.0.0.branch2.1.weight"] == "b3.0.branch2.1.weight"  # the Inception inside the SE wrap


def test_wider_googlenet_nothing_fits(googlenet_params):
    with pytest.raises(InputError, match="nothing fits googlenet: .*b1.0.weight \\(shape 64x1x7x7 -> 80x1x7x7\\)"):
        build_model(GOOGLENET, {"width": 1.25}, init=googlenet_params)


def _params(path):
    npx.set_np()
    return {k: v.asnumpy() for k, v in npx.load(str(path)).items()}


@pytest.mark.slow
def test_frozen_arrays_are_bit_identical_after_training_and_lr_mult_zero_stops_a_stage(digits, tmp_path, capsys,
                                                                                         write_spec):
    spec = str(write_spec(LENET_BN))
    base = ["train", spec, "--data-dir", str(digits), "--batch-size", "64", "--optimizer", "sgd", "--lr", "0.05",
            "--momentum", "0.9", "--weight-decay", "1e-4", "--epochs", "1"]
    assert main([*base, "--out", str(tmp_path / "pre")]) == 0
    before = _params(tmp_path / "pre" / "final.params")
    assert main([*base, "--out", str(tmp_path / "tuned"), "--init", str(tmp_path / "pre"), "--freeze", "features",
                 "--lr-mult", "classifier.1.*=0"]) == 0
    assert f"transferred 16/16 arrays from {tmp_path / 'pre' / 'final.params'}" in capsys.readouterr().err
    after = _params(tmp_path / "tuned" / "final.params")
    frozen = [k for k in before if k.startswith("features.")]
    assert len(frozen) == 12 and all(onp.array_equal(before[k], after[k]) for k in frozen)  # running stats too
    assert all(onp.array_equal(before[k], after[k]) for k in ("classifier.1.weight", "classifier.1.bias"))
    assert not onp.array_equal(before["classifier.0.weight"], after["classifier.0.weight"])


@pytest.mark.parametrize("option, value, message", [
    ("--freeze", "b9", "--freeze b9: no stage or parameter path matches (stages: features, classifier"),
    ("--freeze", "features,clasifier", "--freeze clasifier: no stage or parameter path matches (stages: features, "
                                       "classifier"),
    ("--lr-mult", "b9=10", "--lr-mult b9: no stage or parameter path matches (stages: features, classifier"),
    ("--lr-mult", "classifier", "--lr-mult classifier: expected STAGE=FACTOR such as head=10")])
def test_freeze_and_lr_mult_name_what_they_cannot_find_before_the_run_folder(digits, tmp_path, capsys, option, value,
                                                                              message):
    # an unknown stage was found once the network was built, in a run folder already made: a typo left it behind
    assert main(["train", str(ROOT / "specs" / "lenet.yaml"), "--data-dir", str(digits), "--epochs", "1",
                 "--out", str(tmp_path / "run"), option, value]) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("init, message", [
    ("missing.params", "missing.params: no such parameters file or run folder"),
    ("corrupt.params", "corrupt.params: "),
    ("other.params", "other.params: nothing fits lenet")])
def test_an_init_file_that_cannot_start_the_run_is_refused_before_the_run_folder(digits, tmp_path, capsys, init,
                                                                                    message):
    # it was read once the run folder was made and locked, and a wrong path left an empty run behind
    (tmp_path / "corrupt.params").write_bytes(b"\x12\x01\x00\x00\x00\x00\x00\x00not an MXNet file")
    mx.nd.save(str(tmp_path / "other.params"), {"arg:head.weight": mx.nd.zeros((3, 3))})
    assert main(["train", str(ROOT / "specs" / "lenet.yaml"), "--data-dir", str(digits), "--epochs", "1",
                 "--out", str(tmp_path / "run"), "--init", str(tmp_path / init)]) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()
