"""The command line: summary, compare, schema, overrides, and the generated files kept in sync."""
import json
import subprocess
import sys

import pytest
import yaml

from archspec.cli import main
from archspec.spec.jsonschema import field_reference, spec_schema
from conftest import ROOT, SPECS

GOOGLENET = str(ROOT / "specs/googlenet.yaml")


def test_summary_json_has_the_figures_of_the_table(capsys):
    assert main(["summary", GOOGLENET, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["params"] == 5_977_530 and data["output"] == [10]
    stages = [(l["path"], l["output"]) for l in data["layers"] if l["depth"] == 0]
    assert stages == [("b1", [64, 24, 24]), ("b2", [192, 12, 12]), ("b3", [480, 6, 6]), ("b4", [832, 3, 3]),
                      ("b5", [1024, 1, 1]), ("head", [10])]
    assert sum(l["params"] for l in data["layers"] if l["kind"] == "conv") + 10_250 == data["params"]


def test_summary_depth_shows_branches(capsys):
    assert main(["summary", GOOGLENET, "--depth", "3"]) == 0
    out = capsys.readouterr().out
    assert "branch2.1  conv" in out and "inception" in out


def test_summary_build_checks_against_mxnet(capsys):
    assert main(["summary", GOOGLENET, "--build"]) == 0
    out = capsys.readouterr().out
    assert out.count(" ok") == 7 and "MISMATCH" not in out


def test_compare_one_row_per_spec(capsys):
    assert main(["compare", *map(str, SPECS), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["spec"] for r in rows] == list(map(str, SPECS))
    googlenet = next(r for r in rows if r["name"] == "googlenet")
    assert googlenet["params"] == 5_977_530 and googlenet["output"] == "10"


def test_set_overrides_a_field_and_a_bad_override_names_itself(capsys):
    assert main(["summary", GOOGLENET, "--json", "--set", "stages.b3.0.c1=96", "--set", "stages.head.0.units=100"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["output"] == [100]
    assert next(l for l in data["layers"] if l["path"] == "b3.0")["output"] == [288, 12, 12]  # 96+128+32+32
    assert main(["validate", GOOGLENET, "--set", "stages.b3.0.c1=-1"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("--set stages.b3.0.c1=-1:1:") and "greater than or equal to 1" in out
    assert main(["validate", GOOGLENET, "--set", "stages.b9.0.c1=1"]) == 1
    assert "no field 'b9'" in capsys.readouterr().out


def test_github_format_annotates_the_line(write_spec, capsys):
    path = write_spec("name: t\ninput: {channels: 1, height: 8, width: 8}\nstages:\n  s:\n    - conv: {channels: 0, kernel: 1}\n")
    assert main(["validate", "--format", "github", str(path)]) == 1
    assert capsys.readouterr().out.startswith(f"::error file={path},line=5,col=")


def test_python_dash_m_is_the_script():
    proc = subprocess.run([sys.executable, "-m", "archspec", "summary", GOOGLENET], capture_output=True, text=True)
    assert proc.returncode == 0 and "5,977,530" in proc.stdout


@pytest.mark.slow  # 3-19 s: the fast run stays near a minute on a quick machine
def test_committed_json_schema_is_current_and_accepts_every_spec():
    import jsonschema  # here, not at the top: its import takes 2 s (a URI grammar compiled for its formats)

    committed = json.loads((ROOT / "archspec.schema.json").read_text())
    assert committed == spec_schema(), "run `archspec schema -o archspec.schema.json`"
    jsonschema.Draft202012Validator.check_schema(committed)
    for path in SPECS:
        jsonschema.validate(yaml.safe_load(path.read_text()), committed)
        assert path.read_text().startswith("# yaml-language-server: $schema=../archspec.schema.json")


@pytest.mark.slow  # importing jsonschema takes 2 s
def test_json_schema_catches_what_the_validator_catches():
    import jsonschema

    schema = spec_schema()
    bad = {"name": "t", "input": {"channels": 1, "height": 8, "width": 8},
           "stages": {"s": [{"conv": {"channels": 8, "kernal": 3}}]}}
    assert not jsonschema.Draft202012Validator(schema).is_valid(bad)


def test_readme_field_reference_is_current():
    assert field_reference() in (ROOT / "README.md").read_text(), "regenerate with `archspec schema --markdown`"


@pytest.mark.slow  # 3-19 s: the fast run stays near a minute on a quick machine
def test_analysis_benchmark_runs():
    proc = subprocess.run([sys.executable, str(ROOT / "bench/analysis.py"), "--repeat", "1"], capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["specs"] == len(SPECS) and report["mxnet_imported"] is False


def test_resolve_prints_each_value_with_its_origin(capsys):
    assert main(["resolve", str(ROOT / "specs/googlenet-bn.yaml"), "--set", "num_classes=5"]) == 0
    out = capsys.readouterr().out
    assert "activation: relu  # googlenet.yaml:" in out and "batchnorm: true  # googlenet-bn.yaml:9" in out
    assert "num_classes: 5  # --set num_classes=5" in out
    resolved = yaml.safe_load(out)  # still a spec: it validates as the original does
    assert resolved["defaults"]["conv"] == {"activation": "relu", "batchnorm": True}


def test_github_format_cannot_be_forged_by_a_spec(tmp_path, capsys):
    """A spec's text is data: a carriage return or `::` in it cannot start a workflow command of its own, and a
    file name cannot add properties."""
    path = tmp_path / "a,b::c.yaml"
    path.write_text("name: t\ninput: {channels: 1, height: 8, width: 8}\n"
                    'stages:\n  s:\n    - "conv\\r::error file=x.py,line=1::forged"\n')
    assert main(["validate", "--format", "github", str(path)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines and "\r" not in "".join(lines)
    assert all(line.startswith(f"::error file={tmp_path}/a%2Cb%3A%3Ac.yaml,line=5,") for line in lines), lines


def test_readme_block_table_is_current(capsys):
    assert main(["blocks", "--markdown"]) == 0
    table = capsys.readouterr().out
    assert "| `inception` | `c1, c2, c3, c4, c3_kernel=5, pool=maxpool, activation=relu` |" in table
    assert table in (ROOT / "README.md").read_text(), "regenerate with `archspec blocks --markdown`"


def test_resolve_expand_shows_what_a_block_becomes(capsys):
    assert main(["resolve", "--expand", str(ROOT / "specs/resnet18.yaml")]) == 0
    out = capsys.readouterr().out
    expanded = yaml.safe_load(out)
    first, down = expanded["stages"]["b2"][0], expanded["stages"]["b3"][0]
    # d2l.Residual(64) on 64 channels: no projection; d2l.Residual(128, strides=2): a 1x1 projection
    assert first["sequential"]["layers"][0]["parallel"]["branches"][1] == []
    assert down["sequential"]["layers"][0]["parallel"]["branches"][1] == [
        {"conv": {"channels": 128, "kernel": 1, "stride": 2, "activation": None}}]
    assert "# resnet18.yaml:" in out


@pytest.mark.slow
def test_the_pre_commit_hook_passes_a_good_spec_and_stops_a_bad_one(tmp_path):
    """The hook as pre-commit runs it: its `entry` with the staged files that match `files`."""
    import re
    import shlex

    (hook,) = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    good, bad = tmp_path / "specs" / "good.yaml", tmp_path / "specs" / "bad.yaml"
    good.parent.mkdir()
    good.write_text("name: g\ninput: {channels: 1, height: 8, width: 8}\nstages:\n  s: [flatten, {dense: 3}]\n")
    bad.write_text("name: b\ninput: {channels: 1, height: 8, width: 8}\nstages:\n  s: [{dense: {units: 0}}]\n")
    assert all(re.search(hook["files"], str(p.relative_to(tmp_path))) for p in (good, bad))
    assert not re.search(hook["files"], "docs/mkdocs.yaml")
    entry = shlex.split(hook["entry"])
    assert entry[0] == "archspec"
    run = [sys.executable, "-m", "archspec", *entry[1:]]
    assert subprocess.run([*run, str(good)], capture_output=True).returncode == 0
    failed = subprocess.run([*run, str(good), str(bad)], capture_output=True, text=True)
    assert failed.returncode == 1 and failed.stdout.startswith(f"{bad}:4:")


@pytest.mark.slow
def test_a_zoo_name_stands_for_its_spec_and_a_path_wins(tmp_path, capsys, monkeypatch):
    assert main(["summary", "googlenet", "--json"]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["params"] == 5_977_530 and "googlenet: the zoo's" in out.err
    mine = tmp_path / "mine.yaml"
    mine.write_text("base: googlenet\nname: mine\nargs: {num_classes: 7}\n")  # outside the zoo's folder, by name
    assert main(["summary", str(mine), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["output"] == [7]
    (tmp_path / "googlenet").write_text("name: local\ninput: {channels: 1, height: 8, width: 8}\n"
                                        "stages:\n  s: [flatten]\n")
    monkeypatch.chdir(tmp_path)
    assert main(["summary", "googlenet", "--json"]) == 0  # a file of that name wins over the zoo
    assert json.loads(capsys.readouterr().out)["name"] == "local"
    assert main(["zoo"]) == 0
    listed = capsys.readouterr().out
    assert "googlenet " in listed and "5,977,530" in listed and "mobilenetv2" in listed


def test_resolve_expand_places_a_default_inside_a_library_block_at_its_defaults_line(write_spec, capsys):
    """Issue 23, defect 3: a `defaults:` value applied inside a library block is shown at the `defaults:` line it
    came from; what the library wrote is shown at the block's use."""
    path = write_spec("name: t\ninput: {channels: 3, height: 8, width: 8}\ndefaults:\n"
                      "  batchnorm: {epsilon: 0.001}\n  conv: {dilation: 1}\nstages:\n  s:\n"
                      "    - dense_layer: {channels: 4}\n")
    assert main(["resolve", "--expand", str(path)]) == 0
    lines = [line.strip() for line in capsys.readouterr().out.splitlines()]
    assert "epsilon: 0.001  # spec.yaml:4" in lines and "dilation: 1  # spec.yaml:5" in lines
    assert "kernel: 3  # spec.yaml:8" in lines and "channels: 4  # spec.yaml:8" in lines


def test_every_training_setting_is_an_option_of_train_and_search_and_the_data_ones_of_evaluate():
    """The options are generated from `Config`'s fields: a new field is an option without a list to extend."""
    from archspec.cli import parser
    from archspec.train.config import Config

    commands = parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    def flags(command):
        return {flag for action in commands[command]._actions for flag in action.option_strings}

    recipe_lists = {"augment", "evaluate"}  # transforms: a recipe's `train:` section only
    for name in set(Config.model_fields) - recipe_lists:
        assert "--" + name.replace("_", "-") in flags("train") & flags("search"), name
    assert not {"--augment", "--evaluate"} & flags("train")
    assert {"--batch-size", "--data", "--data-dir", "--test-fraction", "--ctx"} <= flags("evaluate")
    assert not {"--epochs", "--lr", "--resize"} & flags("evaluate")
