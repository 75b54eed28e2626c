"""Export round trips: the files a user deploys give the built network's outputs."""
import json
import xml.etree.ElementTree as ET

import numpy as onp
import onnx
import onnxruntime
import pytest
from mxnet import gluon, np

from archspec import build_model, load_spec
from archspec.cli import main
from archspec import InputError
from conftest import ROOT, SPECS

TOLERANCE = 1e-4  # max abs difference, as promised in the README


def outputs(net, batch=2):
    x = onp.random.default_rng(0).uniform(size=(batch,) + net.spec.input.shape).astype("float32")
    return x, net(np.array(x)).asnumpy()


def onnx_run(path, x):
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # quiet
    return onnxruntime.InferenceSession(str(path), options).run(None, {"data": x})[0]


# Exported at a smaller input, the same operators. VGG-11 and AlexNet: their dense layers hold hundreds of MB of
# weights at 224x224; at 96x96 they are the same networks with a smaller first dense layer (no 5 GB peak in the
# suite). U-Net: 2.8 GB of activations through ONNX Runtime at the paper's 572x572; 188x188 is the smallest input its
# unpadded convolutions and crops accept (a 4x4 output).
SIZES = {"vgg11": 96, "alexnet": 96, "unet": 188}
# The fast run exports GoogLeNet (concatenated branches) and ResNet-18 (residual sums, batch norm); the full run
# exports every spec.
FAST = {"googlenet", "resnet18"}


@pytest.mark.parametrize("spec", [p if p.stem in FAST else pytest.param(p, marks=pytest.mark.slow) for p in SPECS],
                         ids=[p.stem for p in SPECS])
def test_exported_files_give_the_built_networks_outputs(spec, tmp_path):
    size = SIZES.get(spec.stem)
    net = build_model(spec, [f"input.height={size}", f"input.width={size}"] if size else None)
    x, expected = outputs(net)
    from archspec.gluon.export import export

    symbol, params, *side = export(net, tmp_path / "net", "mxnet")  # the spec's normalisation, if it has one
    imported = gluon.SymbolBlock.imports(str(symbol), ["data"], str(params))
    assert onp.abs(imported(np.array(x)).asnumpy() - expected).max() <= TOLERANCE
    del imported  # VGG-11's 0.5 GB of weights: one copy fewer while ONNX is written and run
    (model,) = export(net, tmp_path / "net.onnx", "onnx")
    assert onp.abs(onnx_run(model, x) - expected).max() <= TOLERANCE
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net-0000.params"] + (
        ["net-preprocessing.json"] if net.spec.input.mean else []) + ["net-symbol.json", "net.onnx"]


def test_export_cli_with_trained_weights_and_a_free_batch_size(tmp_path):
    net = build_model(ROOT / "specs" / "lenet.yaml")
    for p in net.collect_params().values():  # "trained": anything but the initial weights
        p.set_data(p.data() + 0.01)
    net.save_parameters(str(tmp_path / "trained.params"))
    x, expected = outputs(net, batch=5)
    assert main(["export", str(ROOT / "specs" / "lenet.yaml"), "--params", str(tmp_path / "trained.params"),
                 "--format", "onnx", "-o", str(tmp_path / "lenet.onnx")]) == 0
    assert onp.abs(onnx_run(tmp_path / "lenet.onnx", x) - expected).max() <= TOLERANCE
    names = {i.name for i in onnx.load(str(tmp_path / "lenet.onnx")).graph.initializer}
    assert names == set(net._collect_params_with_prefix())  # the Gluon names (features.0.weight), not conv0_weight


def test_auxiliary_heads_are_not_exported(tmp_path):
    from archspec.gluon.export import export

    net = build_model(ROOT / "specs" / "googlenet-imagenet-aux.yaml")
    symbol, _ = export(net, tmp_path / "net", "mxnet")
    graph = json.loads(symbol.read_text())
    assert len(graph["heads"]) == 1 and not any("aux" in n["name"] for n in graph["nodes"])


def test_params_of_another_spec_are_refused_and_nothing_is_written(tmp_path, capsys):
    build_model(ROOT / "specs" / "googlenet.yaml").save_parameters(str(tmp_path / "googlenet.params"))
    code = main(["export", str(ROOT / "specs" / "googlenet-28.yaml"), "--params", str(tmp_path / "googlenet.params"),
                 "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 1 and "not for googlenet-28" in err and "b1.0.weight has shape (64, 1, 7, 7)" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["googlenet.params"]
    (tmp_path / "bad.params").write_bytes(b"not a params file")
    with pytest.raises(InputError, match="not an MXNet parameters file"):
        from archspec.gluon.build import load_parameters
        load_parameters(build_model(ROOT / "specs" / "googlenet.yaml"), tmp_path / "bad.params")


def test_draw_writes_an_svg_naming_every_stage_and_block(tmp_path):
    assert main(["draw", str(ROOT / "specs" / "googlenet-imagenet-aux.yaml"), "-o", str(tmp_path / "g.svg")]) == 0
    root = ET.parse(tmp_path / "g.svg").getroot()  # well-formed XML
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    text = " ".join(t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text"))
    spec = load_spec(ROOT / "specs" / "googlenet-imagenet-aux.yaml")
    for stage in [*spec.stages, *spec.aux]:
        assert f"{stage} · " in text or f"{stage} (training only" in text
    assert text.count("concat") == 9  # one merge per Inception block, branches side by side
    assert "13,378,280 parameters" in text and "512x14x14" in text


def test_draw_refuses_an_unknown_format_and_writes_nothing(tmp_path, capsys):
    assert main(["draw", str(ROOT / "specs" / "lenet.yaml"), "-o", str(tmp_path / "g.gif")]) == 1
    assert "cannot tell the format" in capsys.readouterr().err and not list(tmp_path.iterdir())


def test_onnx_export_without_the_export_extra_names_it(tmp_path, monkeypatch, capsys):
    """Issue 23, defect 7: without onnx installed, `export --format onnx` names the missing extra (exit 1), where
    it ended in "internal error: ModuleNotFoundError" (exit 2), and writes nothing."""
    monkeypatch.setitem(__import__("sys").modules, "onnx", None)  # what `import onnx` meets without the extra
    assert main(["export", str(ROOT / "specs" / "lenet.yaml"), "--format", "onnx",
                 "-o", str(tmp_path / "lenet.onnx")]) == 1
    err = capsys.readouterr().err
    assert "archspec[export]" in err and "internal error" not in err
    assert list(tmp_path.iterdir()) == []
