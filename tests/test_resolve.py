"""What `base:` and a spec argument may name (archspec/spec/resolve.py): the project a spec belongs to (the
nearest folder above it holding .git, pyproject.toml or .archspec, else the working directory), OpenMMLab's
layout of variants beside a folder of bases, a base by name beside the spec before the zoo's, precise messages for
an empty, folder or FIFO base, and a spec argument with an extension that is never a zoo name."""
import json
import os
from pathlib import Path

import pytest

from archspec.cli import main

BASE = "name: base\ninput: {channels: 1, height: 8, width: 8}\nstages:\n  s: [flatten, {dense: 3}]\n"


def openmmlab(root: Path, marker: str = ".archspec") -> Path:
    """configs/specs/base.yaml and configs/variants/x.yaml with `base: ../specs/base.yaml`, in a project."""
    if marker:
        (root / marker).mkdir() if marker == ".git" else (root / marker).write_text("")
    (root / "configs" / "specs").mkdir(parents=True)
    (root / "configs" / "variants").mkdir()
    (root / "configs" / "specs" / "base.yaml").write_text(BASE)
    variant = root / "configs" / "variants" / "x.yaml"
    variant.write_text("base: ../specs/base.yaml\nname: x\n")
    return variant


def summary(capsys, *argv):
    code = main(["summary", *map(str, argv), "--json"])
    out = capsys.readouterr()
    return code, (json.loads(out.out) if code == 0 else None), out.err


@pytest.mark.parametrize("marker", [".git", "pyproject.toml", ".archspec"])
def test_openmmlab_layout_needs_no_flag_inside_a_project(tmp_path, capsys, monkeypatch, marker):
    (tmp_path / "proj").mkdir()
    (tmp_path / "elsewhere").mkdir()
    variant = openmmlab(tmp_path / "proj", marker)
    monkeypatch.chdir(tmp_path / "elsewhere")  # the project comes from the spec's place, not from where it runs
    code, out, err = summary(capsys, variant)
    assert code == 0, err
    assert out["name"] == "x" and out["output"] == [3]
    (tmp_path / "proj" / marker).rename(tmp_path / "proj" / "unmarked")  # no project: the working directory's
    code, _, err = summary(capsys, variant)
    assert code == 1 and "is outside" in err


def test_without_a_project_the_working_directory_is_the_root(tmp_path, capsys, monkeypatch):
    variant = openmmlab(tmp_path, marker="")
    monkeypatch.chdir(tmp_path)
    assert summary(capsys, variant)[0] == 0
    monkeypatch.chdir(tmp_path / "configs" / "variants")  # the base is outside the working directory now
    code, _, err = summary(capsys, variant)
    assert code == 1 and "base '../specs/base.yaml' is outside" in err
    assert "(the working directory: no folder above x.yaml holds .git, pyproject.toml, .archspec)" in err
    assert "--base-outside" in err
    assert summary(capsys, variant, "--base-outside")[0] == 0


def test_a_base_outside_the_project_says_which_root_applied(tmp_path, capsys, monkeypatch):
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "pyproject.toml").write_text("")
    (tmp_path / "secret.yaml").write_text(BASE)
    spec = tmp_path / "proj" / "a.yaml"
    spec.write_text("base: ../secret.yaml\n")
    monkeypatch.chdir(tmp_path)  # the working directory holds the secret: the project's root still applies
    code, _, err = summary(capsys, spec)
    assert code == 1 and f"{spec}:1:7: base: base '../secret.yaml' is outside {tmp_path / 'proj'} (the project of " \
                          "a.yaml: the nearest folder above it holding pyproject.toml)" in err


def test_a_base_by_name_prefers_the_file_beside_the_spec(tmp_path, capsys, monkeypatch):
    (tmp_path / "googlenet.yaml").write_text(BASE.replace("name: base", "name: local"))
    (tmp_path / "mine.yaml").write_text("base: googlenet\n")
    monkeypatch.chdir(tmp_path)
    code, out, err = summary(capsys, tmp_path / "mine.yaml")
    assert code == 0 and out["name"] == "local" and out["output"] == [3], err
    (tmp_path / "googlenet.yaml").unlink()  # none beside it: the zoo's
    code, out, err = summary(capsys, tmp_path / "mine.yaml")
    assert code == 0 and out["name"] == "googlenet" and out["params"] == 5_977_530


@pytest.mark.parametrize("base, make, message", [
    ("''", None, "base is empty; name a spec file"),
    ("sub", "folder", "base 'sub' is a folder"),
    ("pipe.yaml", "fifo", "base 'pipe.yaml' is not a regular file"),
    ("nothing.yaml", None, "base spec 'nothing.yaml' not found beside the spec or in the zoo"),
    ("../nothing.yaml", None, "base spec '../nothing.yaml' not found beside the spec (looked for"),
])
def test_a_base_that_is_no_spec_file_is_said_for_what_it_is(tmp_path, capsys, monkeypatch, base, make, message):
    (tmp_path / "proj" / "in").mkdir(parents=True)
    (tmp_path / "proj" / ".git").mkdir()
    if make == "folder":
        (tmp_path / "proj" / "in" / "sub").mkdir()
    if make == "fifo":
        os.mkfifo(tmp_path / "proj" / "in" / "pipe.yaml")
    spec = tmp_path / "proj" / "in" / "a.yaml"
    spec.write_text(f"base: {base}\nname: a\n")
    monkeypatch.chdir(tmp_path)
    code, _, err = summary(capsys, spec)
    assert code == 1 and f"{spec}:1:7: base: {message}" in err, err


@pytest.mark.parametrize("argument", ["lenet.yml", "googlenet.params", "specs2/lenet", "lenet.yaml"])
def test_a_spec_argument_with_an_extension_or_a_folder_is_a_path(tmp_path, capsys, monkeypatch, argument):
    monkeypatch.chdir(tmp_path)
    code, _, err = summary(capsys, argument)
    assert code == 1 and f"{argument}:1:1: <spec>: cannot read file: No such file or directory" in err
    assert "the zoo's" not in err
    code, out, err = summary(capsys, "lenet")  # a name: the zoo's, and said so
    assert code == 0 and out["params"] == 61_706 and "lenet: the zoo's" in err
