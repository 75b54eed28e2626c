"""Inner outputs: a network giving the outputs of named stages (a backbone's features), built and exported."""
import numpy as onp
import onnxruntime
import pytest
from mxnet import np

from archspec import InputError, load_spec, summarize
from archspec.cli import main
from archspec.gluon.build import build_model
from conftest import ROOT

GOOGLENET = ROOT / "specs" / "googlenet.yaml"


def test_outputs_of_named_stages_equal_the_stages_run_one_after_another():
    net = build_model(GOOGLENET, outputs=["b3", "b5"])
    whole = build_model(GOOGLENET, hybridize=False)
    for name, param in whole._collect_params_with_prefix().items():
        param.set_data(net._collect_params_with_prefix()[name].data())
    x = np.array(onp.random.default_rng(0).normal(size=(2, 1, 96, 96)).astype("float32"))
    b3, b5 = net(x)
    y = x
    expected = {}
    for name in whole.stage_names:
        y = expected[name] = whole[name](y)
    assert onp.allclose(b3.asnumpy(), expected["b3"].asnumpy(), atol=1e-5)
    assert onp.allclose(b5.asnumpy(), expected["b5"].asnumpy(), atol=1e-5)
    rows = {row.path: row for row in summarize(load_spec(GOOGLENET)).rows}
    assert b3.shape[1:] == tuple(rows["b3"].output) and net.output_names == ["b3", "b5"]


def test_an_unknown_stage_is_named():
    with pytest.raises(InputError, match="googlenet has no stage b9 \\(its stages: b1, b2, b3, b4, b5, head\\)"):
        build_model(GOOGLENET, outputs=["b4", "b9"])


@pytest.mark.slow
def test_multi_output_onnx_export_runs_in_onnx_runtime_with_the_networks_outputs(tmp_path, capsys):
    net = build_model(GOOGLENET, outputs=["b4", "b5"])
    net.save_parameters(str(tmp_path / "g.params"))
    assert main(["export", str(GOOGLENET), "--params", str(tmp_path / "g.params"), "--outputs", "b4,b5",
                 "--format", "onnx", "-o", str(tmp_path / "backbone.onnx")]) == 0
    x = onp.random.default_rng(1).normal(size=(3, 1, 96, 96)).astype("float32")
    session = onnxruntime.InferenceSession(str(tmp_path / "backbone.onnx"))
    assert [o.name for o in session.get_outputs()] == ["b4", "b5"]
    b4, b5 = session.run(None, {"data": x})
    ours = net(np.array(x))
    assert onp.abs(b4 - ours[0].asnumpy()).max() < 1e-4 and onp.abs(b5 - ours[1].asnumpy()).max() < 1e-4
    assert b4.shape == (3, 832, 3, 3)


def test_input_normalisation_is_in_the_graph_and_recorded_by_exports(tmp_path, write_spec):
    import json

    import onnx

    normalised = {"input.channels": 3, "input.mean": [0.4, 0.5, 0.6], "input.std": [0.2, 0.25, 0.5]}
    net = build_model(ROOT / "specs" / "lenet.yaml", normalised)
    plain = build_model(ROOT / "specs" / "lenet.yaml", {"input.channels": 3})
    for path, param in plain._collect_params_with_prefix().items():
        param.set_data(net._collect_params_with_prefix()[path].data())
    x = onp.random.default_rng(2).uniform(size=(2, 3, 28, 28)).astype("float32")
    by_hand = (x - onp.array([0.4, 0.5, 0.6])[:, None, None]) / onp.array([0.2, 0.25, 0.5])[:, None, None]
    expected = plain(np.array(by_hand.astype("float32"))).asnumpy()
    assert onp.abs(net(np.array(x)).asnumpy() - expected).max() < 1e-5

    from archspec.gluon.export import export

    export(net, tmp_path / "net.onnx", "onnx")
    recorded = {p.key: p.value for p in onnx.load(str(tmp_path / "net.onnx")).metadata_props}
    assert json.loads(recorded["preprocessing"])["mean"] == [0.4, 0.5, 0.6]
    out = onnxruntime.InferenceSession(str(tmp_path / "net.onnx")).run(None, {"data": x})[0]
    assert onp.abs(out - expected).max() < 1e-4
    export(net, tmp_path / "net", "mxnet")
    assert json.loads((tmp_path / "net-preprocessing.json").read_text())["std"] == [0.2, 0.25, 0.5]


def test_summary_says_which_outputs_a_network_gives(capsys):
    assert main(["summary", str(GOOGLENET), "--outputs", "b4,b5"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "outputs: b4 832x3x3, b5 1024x1x1"
    assert main(["summary", str(GOOGLENET), "--outputs", "b9"]) == 1
    assert "--outputs: no stage b9 (stages: b1, b2, b3, b4, b5, head)" in capsys.readouterr().err


# A residual sum whose stage is an output and is read by the next stage (b4 -> b5), and a convolution whose stage
# is an output and is read by a batch norm (b1 -> b2): oneDNN's graph passes fuse across both unless told.
TAPS = """
name: taps
input: {channels: 3, height: 12, width: 12}
stages:
  b1: [{conv: {channels: 8, kernel: 3, padding: 1}}]
  b2: [batchnorm, {activation: relu}]
  b3: [{conv: {channels: 8, kernel: 3, padding: 1}}]
  b4:
    - parallel: {merge: add, branches: [[{conv: {channels: 8, kernel: 3, padding: 1}}], []]}
  b5: [{activation: relu}]
  head: [global_avg_pool, {dense: 10}]
"""


@pytest.mark.parametrize("outputs", [["b4", "b5"], ["b4", "head"], ["b1", "b2"], ["b1", "head"]])
def test_inner_outputs_survive_onednns_inference_graph_int8_and_onnx(write_spec, tmp_path, outputs):
    """The default inference graph (oneDNN's) and INT8 give the stages' outputs the network gives: they fused a
    stage's last operator into the next stage's first and returned wrong values (b5 off by 89%) or failed."""
    from archspec.gluon.export import export
    from archspec.gluon.precision import for_inference, to_int8

    net = build_model(write_spec(TAPS), outputs=outputs)
    rng = onp.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(2, 3, 12, 12)).astype("float32")
    expected = [o.asnumpy() for o in net(np.array(x))]

    def off(got):
        return max(float(onp.abs(g - e).max() / onp.abs(e).max()) for g, e in zip(got, expected))

    assert off([o.asnumpy() for o in for_inference(net, "fp32")(np.array(x))]) < 1e-5
    calibration = np.array(rng.uniform(-1, 1, size=(32, 3, 12, 12)).astype("float32"))
    assert off([o.asnumpy() for o in to_int8(net, calibration)(np.array(x))]) < 0.1  # INT8's rounding, not 0.9
    (model,) = export(net, tmp_path / "taps.onnx", "onnx")
    assert off(onnxruntime.InferenceSession(str(model)).run(None, {"data": x})) < 1e-5
