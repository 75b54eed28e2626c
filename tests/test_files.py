"""The output-path rule (archspec/files.py), once per command that writes: a target that is one of the command's
inputs (by inode, through symbolic and hard links, a file inside an input folder), an empty path or one ending in
a folder, and names used as paths (study, report, spec names) are refused with exit 1 before anything is written;
the user's files are byte for byte what they were."""
import hashlib
import os
from pathlib import Path

import pytest

from archspec.cli import main
from archspec.files import named, plain_name, target
from archspec.spec.diagnostics import InputError

ROOT = Path(__file__).resolve().parent.parent
LENET = (ROOT / "specs" / "lenet.yaml").read_text()


def snapshot(folder):
    """Every file under `folder` (hidden ones too) with a digest of its bytes. A digest, not the bytes: `folder` may
    be the session's temporary folder, where earlier tests left exported networks (1.6 GB held at once)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).digest()
            for p in sorted(Path(folder).rglob("*")) if p.is_file()}


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A folder with lenet.yaml, a variant of it through `base:`, and weights; the working directory."""
    (tmp_path / "lenet.yaml").write_text(LENET)
    (tmp_path / "variant.yaml").write_text("base: lenet.yaml\nname: variant\n")
    (tmp_path / "my.params").write_bytes(b"trained weights, not to be replaced")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def refused(argv, capsys, folder, message):
    """Run `argv`: exit 1, `message` on stderr, no traceback, and no file under `folder` changed or added."""
    before = snapshot(folder)
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and "internal error" not in err, err
    assert snapshot(folder) == before
    return err


def test_export_never_writes_over_its_spec_its_base_or_its_weights(project, capsys):
    refused(["export", "lenet.yaml", "--format", "onnx", "-o", "lenet.yaml"], capsys, project,
            "lenet.yaml: is lenet.yaml, which this command reads")
    refused(["export", "variant.yaml", "--format", "onnx", "-o", "lenet.yaml"], capsys, project,
            "which this command reads")  # the spec's base is read too
    refused(["export", "lenet.yaml", "--params", "my.params", "--format", "onnx", "-o", "my.params"], capsys,
            project, "my.params: is my.params, which this command reads")
    os.symlink("my.params", project / "link.onnx")
    os.link(project / "my.params", project / "hard.onnx")
    for other in ("link.onnx", "hard.onnx"):  # the same file under another name
        refused(["export", "lenet.yaml", "--params", "my.params", "--format", "onnx", "-o", other], capsys, project,
                "which this command reads")


def test_export_to_an_empty_path_or_a_folder_writes_no_hidden_file(project, capsys):
    refused(["export", "lenet.yaml", "-o", ""], capsys, project, "-o: an empty path names nothing to write")
    refused(["export", "lenet.yaml", "-o", "sub/"], capsys, project, "ends in a folder, not a file name")
    refused(["export", "lenet.yaml", "-o", "."], capsys, project, "ends in a folder, not a file name")
    assert not [n for n in os.listdir(project) if n.startswith(".")]


def test_export_as_a_library_refuses_an_empty_path(project):
    from archspec import build_model
    from archspec.gluon.export import export

    with pytest.raises(InputError, match="empty path"):
        export(build_model("lenet.yaml"), "")
    assert not [n for n in os.listdir(project) if n.startswith(".")]


def test_evaluate_never_writes_its_predictions_over_an_input(project, digits, capsys):
    refused(["evaluate", "lenet.yaml", "--params", "my.params", "--predictions", "lenet.yaml"], capsys, project,
            "lenet.yaml: is lenet.yaml, which this command reads")
    refused(["evaluate", "lenet.yaml", "--params", "my.params", "--predictions", "my.params"], capsys, project,
            "which this command reads")
    data = snapshot(digits)
    refused(["evaluate", "lenet.yaml", "--params", "my.params", "--data-dir", str(digits), "--predictions",
             str(next(digits.iterdir()))], capsys, project, "which this command reads")  # a file of the data
    assert snapshot(digits) == data


def test_draw_and_schema_never_write_over_an_input(project, capsys):
    refused(["draw", "variant.yaml", "-o", "lenet.yaml"], capsys, project, "which this command reads")
    refused(["draw", "lenet.yaml", "-o", ""], capsys, project, "an empty path")
    (project / "kinds.py").write_text("# my kinds\n")
    refused(["schema", "--plugin", "kinds.py", "-o", "kinds.py"], capsys, project, "kinds.py: is kinds.py")
    refused(["schema", "-o", ""], capsys, project, "-o: an empty path")


def test_train_refuses_an_empty_run_folder_name_or_its_spec(project, capsys):
    refused(["train", "lenet.yaml", "--out", ""], capsys, project, "--out: an empty path")
    refused(["train", "lenet.yaml", "--out", "lenet.yaml"], capsys, project, "which this command reads")


@pytest.mark.slow
def test_sample_refuses_an_empty_folder_name_and_a_spec_name_that_is_a_path(project, capsys):
    space = ROOT / "specs" / "anynet-space.yaml"
    refused(["sample", str(space), "-n", "2", "--out", ""], capsys, project, "--out: an empty path")
    err = refused(["sample", str(space), "-n", "2", "--out", "out", "--set", "name=../../escape"], capsys,
                  project.parent, "name")
    assert not (project / "out").exists(), err


@pytest.mark.slow
def test_search_study_and_report_names_are_names_not_paths(project, capsys):
    (project / "space.yaml").write_text((ROOT / "specs" / "anynet-space.yaml").read_text())
    refused(["search", "space.yaml", "--out", "out", "--study", "../../escape", "--trials", "1"], capsys,
            project.parent, "--study '../../escape': a name, not a path")
    refused(["search", "--report", "--study", "../../../esc", "--report-out", "rep", "--storage",
             f"sqlite:///{project / 'none.db'}"], capsys, project.parent, "a name, not a path")
    refused(["search", "space.yaml", "--out", "", "--trials", "1"], capsys, project, "--out: an empty path")
    refused(["search", "--report", "--report-out", "", "--storage", f"sqlite:///{project / 'none.db'}"], capsys,
            project, "--report-out: an empty path")
    refused(["search", "--report", "--report-out", "rep", "--storage", "sqlite:///lenet.yaml", "--study", "s"],
            capsys, project, "lenet.yaml")  # not a database: nothing written over it
    assert not (project / "rep").exists()


@pytest.mark.parametrize("name", ["", ".hidden", "a/b", "..", "a\\b", " padded", "tab\tname"])
def test_a_name_is_not_a_path(name):
    with pytest.raises(InputError, match="a name, not a path"):
        plain_name(name, "--study")


def test_target_follows_a_link_to_its_file_and_refuses_it_when_read(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "x.idx").write_bytes(b"x")
    os.symlink(tmp_path / "data" / "x.idx", tmp_path / "out.csv")
    with pytest.raises(InputError, match="inside"):
        target(tmp_path / "out.csv", [tmp_path / "data"])
    assert target(tmp_path / "out.csv") == str(tmp_path / "data" / "x.idx")
    assert named("a/b.csv") == "a/b.csv"
