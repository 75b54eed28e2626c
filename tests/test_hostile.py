"""An adversarial corpus: what a hostile user, a corrupt file or a mistyped command can bring. Each case asserts
the exit code, the located message and that nothing on disk changed; none may end in a traceback, an internal
error or a hang."""
import os
import subprocess
import sys
import threading

import pytest

from archspec.cli import main
from conftest import ROOT

GOOD = "name: t\ninput: {channels: 1, height: 8, width: 8}\nstages:\n  s: [flatten, {dense: 3}]\n"


def snapshot(folder):
    return {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}


CASES = [  # (name, files to write, argv, exit code, fragment of the message)
    ("base outside the folder", {"sub/a.yaml": "base: ../secret.yaml\n", "secret.yaml": "token: 123\n"},
     ["resolve", "{tmp}/sub/a.yaml"], 1, "is outside"),
    ("base outside, absolute", {"a.yaml": "base: /etc/hostname\n"}, ["validate", "{tmp}/a.yaml"], 1, "is outside"),
    ("YAML 1.1 octal", {"a.yaml": GOOD.replace("dense: 3", "dense: 010")}, ["validate", "{tmp}/a.yaml"], 1,
     "is a number only in YAML 1.1"),
    ("YAML 1.1 base 60", {"a.yaml": GOOD.replace("dense: 3", "dense: 1:30")}, ["validate", "{tmp}/a.yaml"], 1,
     "is a number only in YAML 1.1"),
    ("5,000-digit integer", {"a.yaml": GOOD.replace("dense: 3", "dense: " + "9" * 5000)},
     ["validate", "{tmp}/a.yaml"], 1, "integer of 5000 digits"),
    ("infinite float", {"a.yaml": GOOD.replace("flatten", "{dropout: .inf}")}, ["validate", "{tmp}/a.yaml"], 1,
     "finite number"),
    ("width 0 from the command line", {"a.yaml": GOOD}, ["validate", "{tmp}/a.yaml", "--set", "width=0"], 1,
     "--set width=0:1:"),
    ("width 1e9 in the file", {"a.yaml": "width: 1e9\n" + GOOD}, ["validate", "{tmp}/a.yaml"], 1, "a.yaml:1:8: width"),
    ("typo in a nested override", {"a.yaml": GOOD}, ["validate", "{tmp}/a.yaml", "--set", "input.hieght=1"], 1,
     "did you mean 'height'?"),
    ("draw into a folder that does not exist", {"a.yaml": GOOD}, ["draw", "{tmp}/a.yaml", "-o", "{tmp}/no/d.svg"], 1,
     "no such directory"),
    ("schema into a file that cannot be", {"a.yaml": GOOD}, ["schema", "-o", "/proc/archspec.json"], 1,
     "cannot write here"),
    ("unknown plugin", {"a.yaml": GOOD}, ["validate", "--plugin", "{tmp}/nope.py", "{tmp}/a.yaml"], 1,
     "no such file"),
]


@pytest.mark.parametrize("name, files, argv, code, fragment", CASES, ids=[c[0] for c in CASES])
def test_hostile_input_is_refused_cleanly_and_changes_nothing(tmp_path, capsys, name, files, argv, code, fragment):
    for relative, text in files.items():
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text(text)
    before = snapshot(tmp_path)
    assert main([a.format(tmp=tmp_path) for a in argv]) == code
    out = capsys.readouterr()
    assert fragment in out.out + out.err, out
    assert "Traceback" not in out.out + out.err and "internal error" not in out.err
    assert snapshot(tmp_path) == before


def test_a_fifo_is_not_read_as_a_spec(tmp_path):
    """A named pipe would block a reader forever: it is refused at once, as every file that is not a regular one."""
    fifo = tmp_path / "spec.yaml"
    os.mkfifo(fifo)
    writer = threading.Timer(10, lambda: open(fifo, "w").close())  # unblocks a reader that would hang, then fails
    writer.start()
    try:
        proc = subprocess.run([sys.executable, "-m", "archspec", "validate", str(fifo)], capture_output=True,
                              text=True, timeout=30)
    finally:
        writer.cancel()
    assert proc.returncode == 1 and "not a regular file" in proc.stdout, proc.stdout + proc.stderr


def test_the_zoo_keeps_its_bases_inside_its_folder():
    for path in sorted((ROOT / "specs").glob("*.yaml")):
        assert main(["validate", "-q", str(path)]) == 0, path
