"""Shape problems are spec problems: reported by `archspec validate` at the line of the layer
responsible, with the shapes involved; useless layers are warnings; budgets refuse huge specs."""
import pytest

from archspec import Limits, SpecError, load_spec, summarize
from archspec.cli import main

HEAD = "name: t\ninput: {channels: 3, height: 8, width: 8}\nstages:\n  body:\n"


@pytest.mark.parametrize("body,line,fragments", [
    ("    - conv: {channels: 4, kernel: 3, stride: 2}\n    - conv: {channels: 4, kernel: 5}\n", 6,
     ["stages.body.1.conv", "input 4x3x3", "kernel 5 is larger than the padded input 3"]),
    ("    - maxpool: {kernel: 2}\n    - maxpool: {kernel: 2}\n    - maxpool: {kernel: 2}\n"
     "    - maxpool: {kernel: 2}\n", 8, ["stages.body.3.maxpool", "input 3x1x1", "kernel 2"]),
    ("    - parallel:\n        merge: add\n        branches:\n          - []\n"
     "          - [{conv: {channels: 6, kernel: 1}}]\n", 5,
     ["stages.body.0.parallel", "3x8x8, 6x8x8", "do not match"]),
    ("    - parallel:\n        merge: concat\n        branches:\n          - []\n"
     "          - [{conv: {channels: 6, kernel: 3}}]\n", 5,
     ["concat needs equal spatial sizes", "3x8x8, 6x6x6"]),
    ("    - conv: {channels: 4, kernel: 1, groups: 2}\n", 5, ["input channels (3) must be divisible by groups (2)"]),
    ("    - flatten\n    - conv: {channels: 4, kernel: 1}\n", 6, ["needs a (channels, height, width) input, got 192"]),
], ids=["kernel larger than input", "spatial size below 1", "add of mismatched shapes",
        "concat of mismatched sizes", "groups", "conv after flatten"])
def test_shape_errors_name_the_layer_line(write_spec, capsys, body, line, fragments):
    path = write_spec(HEAD + body)
    assert main(["validate", str(path)]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"{path}:{line}:"), out
    for fragment in fragments:
        assert fragment in out


def test_a_shape_error_inside_an_inception_points_at_the_inception(write_spec):
    path = write_spec(HEAD.replace("height: 8, width: 8", "height: 2, width: 2")
                      + "    - maxpool: {kernel: 2}\n    - inception: {c1: 4, c2: [4, 4], c3: [4, 4], c4: 4}\n"
                        "    - conv: {channels: 4, kernel: 2}\n")
    with pytest.raises(SpecError) as e:
        summarize(load_spec(path))
    assert (e.value.line, e.value.path) == (7, ("stages", "body", 2, "conv"))


def test_useless_layers_are_warnings_not_errors(write_spec, capsys):
    path = write_spec(HEAD + "    - global_avg_pool\n    - maxpool: {kernel: 1}\n    - dropout: 0.0\n")
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [l.split(":")[1] for l in out] == ["6", "7"]
    assert "maxpool on a 1x1 input does nothing" in out[0] and "warning" in out[0]


def test_the_budget_refuses_huge_specs_before_building(write_spec, capsys):
    path = write_spec(HEAD.replace("height: 8, width: 8", "height: 224, width: 224")
                      + "    - conv: {channels: 4096, kernel: 3, padding: 1}\n    - dense: 4096\n")
    assert main(["validate", str(path)]) == 1
    out = capsys.readouterr().out
    assert "exceed the limit of 1,000,000,000" in out and "parameters" in out
    assert main(["validate", "--max-params", str(10**12), "--max-memory", str(1 << 40), str(path)]) == 0
    with pytest.raises(SpecError, match="bytes of activations per example exceed the limit of 1,000"):
        summarize(load_spec(path), limits=Limits(max_params=10**12, max_memory=1000))


def test_input_option_checks_another_size(capsys):
    from conftest import ROOT
    googlenet = str(ROOT / "specs/googlenet.yaml")
    assert main(["validate", "--input", "1x224x224", googlenet]) == 0
    capsys.readouterr()
    # GoogLeNet's padding keeps every size valid, but at 16x16 stage 4's pool sees a 1x1 input.
    assert main(["validate", "--input", "1x16x16", googlenet]) == 0
    out = capsys.readouterr().out
    lines = (ROOT / "specs/googlenet.yaml").read_text().splitlines()
    b4 = next(i for i, line in enumerate(lines) if line.startswith("  b4:"))
    pool = next(i for i in range(b4, len(lines)) if lines[i].strip().startswith("- maxpool")) + 1
    assert f"googlenet.yaml:{pool}:" in out and "stages.b4.5.maxpool" in out and "does nothing" in out
