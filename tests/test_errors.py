"""Bad specs: `archspec validate` exits 1 with one `file:line:col: path: message` line per problem,
never a traceback, and never executes anything in the file."""
import subprocess
import sys

import pytest

from archspec.cli import main

GOOD_HEAD = """\
name: t
input: {channels: 1, height: 28, width: 28}
stages:
  body:
"""

# (name, YAML text, expected line, expected fragments of the message)
BROKEN = [
    ("wrong type", GOOD_HEAD + "    - conv: {channels: sixty-four, kernel: 3}\n", 5,
     ["stages.body.0.conv.channels", "expected an integer", "'sixty-four'"]),
    ("negative size", GOOD_HEAD + "    - conv: {channels: -64, kernel: 3}\n", 5,
     ["channels", "greater than or equal to 1", "-64"]),
    ("non-integer size", GOOD_HEAD + "    - conv:\n        channels: 8\n        kernel: 3.5\n", 7,
     ["stages.body.0.conv.kernel", "3.5"]),
    ("typo'd key", GOOD_HEAD + "    - conv:\n        channels: 8\n        kernal: 3\n", 7,
     ["unknown field 'kernal'", "did you mean 'kernel'?"]),
    ("c2 of length 1", GOOD_HEAD + "    - inception: {c1: 8, c2: [8], c3: [4, 8], c4: 8}\n", 5,
     ["stages.body.0.inception.c2", "at least 2"]),
    ("c3 of length 3", GOOD_HEAD + "    - inception: {c1: 8, c2: [8, 8], c3: [4, 8, 8], c4: 8}\n", 5,
     ["inception.c3", "at most 2"]),
    ("unknown kind", GOOD_HEAD + "    - convv: {channels: 8, kernel: 3}\n", 5,
     ["unknown layer kind 'convv'", "did you mean 'conv'?"]),
    ("missing field", GOOD_HEAD + "    - conv: {kernel: 3}\n", 5, ["missing required field 'channels'"]),
    ("bad activation", GOOD_HEAD + "    - conv: {channels: 8, kernel: 3, activation: rellu}\n", 5,
     ["activation", "'relu'", "'rellu'"]),
    ("two kinds in one entry", GOOD_HEAD + "    - conv: {channels: 8, kernel: 3}\n      maxpool: {kernel: 2}\n", 5,
     ["exactly one kind", "conv, maxpool"]),
    ("unknown top-level field", GOOD_HEAD.replace("name: t", "name: t\ndesciption: x") + "    - flatten\n", 2,
     ["unknown top-level field 'desciption'", "did you mean 'description'?"]),
    ("bad default", GOOD_HEAD.replace("stages:", "defaults:\n  conv: {activaton: relu}\nstages:") + "    - flatten\n",
     4, ["defaults.conv.activaton", "did you mean 'activation'?"]),
    ("duplicate key", GOOD_HEAD + "    - conv: {channels: 8, channels: 16, kernel: 3}\n", 5,
     ["duplicate key 'channels'"]),
    ("python tag", GOOD_HEAD + "    - conv: !!python/object/apply:os.system ['touch {canary}']\n", 5,
     ["tag", "not allowed"]),
    ("custom tag", GOOD_HEAD + "    - conv: !include other.yaml\n", 5, ["tag '!include' is not allowed"]),
    ("alias bomb", 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
                   "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n", 1,
     ["anchors (&name) are not allowed"]),
    ("alias", "name: t\ninput: {channels: 1, height: 28, width: 28}\nstages:\n  a: [flatten]\n  b: *x\n", 5,
     ["aliases (*name) are not allowed"]),
    ("deep nesting", "x: " + "[" * 200 + "]" * 200 + "\n", 1, ["nested deeper than 64"]),
    ("invalid YAML", GOOD_HEAD + "    - conv: {channels: 8, kernel: 3\n", 6, ["invalid YAML"]),
    ("empty file", "# nothing here\n", 1, ["empty spec"]),
    ("list at top level", "- conv: {channels: 8}\n", 1, ["mapping at top level, not a list"]),
    ("scalar at top level", "googlenet\n", 1, ["mapping at top level, not a string"]),
    ("no stages", "name: t\ninput: {channels: 1, height: 28, width: 28}\n", 1, ["missing required field 'stages'"]),
]


@pytest.mark.parametrize("name,text,line,fragments", BROKEN, ids=[b[0] for b in BROKEN])
def test_validate_reports_the_line(tmp_path, capsys, name, text, line, fragments):
    canary = tmp_path / "canary"
    path = tmp_path / "bad.yaml"
    path.write_text(text.replace("{canary}", str(canary)), encoding="utf-8")
    assert main(["validate", str(path)]) == 1
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err
    first = out.out.splitlines()[0]
    assert first.startswith(f"{path}:{line}:"), first
    for fragment in fragments:
        assert fragment in out.out, out.out
    assert not canary.exists()


@pytest.mark.parametrize("data,message", [
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary file"),
    (b"name: caf\xe9\n", "not UTF-8"),
    (b"name: t\nstages: \x07\n", "invalid YAML"),
], ids=["binary", "latin-1", "control character"])
def test_files_that_are_not_yaml_text(tmp_path, capsys, data, message):
    path = tmp_path / "bad.yaml"
    path.write_bytes(data)
    assert main(["validate", str(path)]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"{path}:") and message in out


def test_all_problems_of_a_file_are_reported_in_line_order(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(GOOD_HEAD + "    - conv: {channels: 0, kernel: 3}\n    - maxpol: {kernel: 2}\n"
                    "    - dense: {units: 10, flaten: true}\n")
    assert main(["validate", str(path)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert [int(l.split(":")[1]) for l in lines] == [5, 6, 7]


def test_a_good_and_a_bad_file_together_exit_1(tmp_path, capsys):
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(GOOD_HEAD + "    - flatten\n    - dense: 10\n")
    bad.write_text(GOOD_HEAD + "    - dense: {units: ten}\n")
    assert main(["validate", str(good)]) == 0
    assert main(["validate", str(good), str(bad)]) == 1
    assert capsys.readouterr().out.startswith(f"{bad}:5:")


def test_missing_file(tmp_path, capsys):
    assert main(["validate", str(tmp_path / "nope.yaml")]) == 1
    assert "cannot read file" in capsys.readouterr().out


def test_command_line_end_to_end_without_traceback_or_mxnet(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(GOOD_HEAD + "    - conv: {channels: 8, kernal: 3}\n")
    code = ("import sys, runpy; sys.argv = ['archspec', 'validate', %r]\n"
            "try:\n    runpy.run_module('archspec', run_name='__main__')\n"
            "except SystemExit as e:\n    assert 'mxnet' not in sys.modules; raise\n") % str(path)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout.startswith(f"{path}:5:") and "did you mean 'kernel'" in proc.stdout
    assert "Traceback" not in proc.stderr


def test_a_list_too_short_for_a_pair_names_no_pydantic_internal(write_spec):
    """Issue 23, defect 5: `padding: [1]` says what a padding is, not "missing required field 'tuple[...]'"."""
    from archspec import SpecError, load_spec

    path = write_spec("name: t\ninput: {channels: 3, height: 8, width: 8}\nstages:\n  s:\n"
                      "    - conv: {channels: 4, kernel: 3, padding: [1]}\n")
    with pytest.raises(SpecError) as e:
        load_spec(path)
    messages = [(p.line, p.path[-1], p.message) for p in e.value.problems]
    assert len(messages) == 1 and messages[0][:2] == (5, "padding"), messages
    assert "tuple[" not in messages[0][2] and "constrained" not in messages[0][2]
    assert messages[0][2] == "expected an integer or a list of 2 items or 'same' or a mapping, got [1]"


TWICE = """\
name: t
input: {channels: 1, height: 28, width: 28}
defaults:
  twice: {channels: 4}
blocks:
  twice:
    args: {channels: required}
    types: {channels: sise}
    layers:
      - conv: {channels: $channels, kernel: 3, padding: 1}
      - conv: {channels: $channels, kernel: 3, padding: 1}
stages:
  body:
    - twice: {channels: 8}
    - twice: {channels: 16}
    - flatten
"""


@pytest.mark.parametrize("text, line, col, message", [
    (TWICE, 8, 23, "blocks.twice.types.channels: unknown type 'sise'; did you mean 'size'? (types: size, count, int, "
                   "number, flag, text, activation, window, [type, ...] or {one_of: [...]})"),
    (TWICE.replace("{channels: sise}", "{channels: [size, sise]}"), 8, 23,
     "blocks.twice.types.channels: unknown type 'sise'; did you mean 'size'?"),
    (TWICE.replace("    types: {channels: sise}\n", "    types: {channels: size}\n    doc: [not, text]\n"), 9, 10,
     "blocks.twice.doc: expected a string, got ['not', 'text']"),
], ids=["unknown type", "unknown type in a list", "bad field"])
def test_a_block_whose_definition_is_bad_is_one_problem_at_the_definition(tmp_path, capsys, text, line, col,
                                                                           message):
    # its uses (and its defaults) were reported as well, as an "unknown layer kind 'twice'" each
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    assert main(["validate", str(path)]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"{path}:{line}:{col}: {message}") and len(out.splitlines()) == 1, out
