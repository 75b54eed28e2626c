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
    # issue 26: internal errors that are now located errors, vague messages that now name the cause
    ("a superscript as a list index", {"a.yaml": GOOD}, ["validate", "{tmp}/a.yaml", "--set", "stages.s.².units=3"],
     1, "--set stages.s.².units=3:1:18: stages.s.²: override stages.s.².units: a list is indexed by a whole number "
        "(0 to 1, or -1 from the end), not '²'"),
    ("a double minus as a list index", {"a.yaml": GOOD}, ["validate", "{tmp}/a.yaml", "--set", "stages.s.--1.x=3"],
     1, "stages.s.--1: override stages.s.--1.x: a list is indexed by a whole number"),
    ("a field of a short-form entry", {"a.yaml": GOOD}, ["validate", "{tmp}/a.yaml", "--set", "stages.s.1.units=5"],
     1, "--set stages.s.1.units=5:1:18: stages.s.1: override stages.s.1.units: the entry at stages.s.1 is written "
        "short (dense: 3), with no field 'units' of its own; set it as a whole, e.g. stages.s.1.dense={units: VALUE}"),
    ("a learning rate of 1e308", {"a.yaml": GOOD}, ["train", "{tmp}/a.yaml", "--lr", "1e308", "--out", "{tmp}/r"], 1,
     "--lr: input should be less than or equal to 10000"),
    ("a weight decay of 1e308", {"a.yaml": GOOD}, ["train", "{tmp}/a.yaml", "--wd", "1e308", "--out", "{tmp}/r"],
     1, "--weight-decay: input should be less than or equal to 10000"),
    ("dist_sync without the launcher", {"a.yaml": GOOD}, ["train", "{tmp}/a.yaml", "--kvstore", "dist_sync", "--out",
     "{tmp}/r"], 1, "--kvstore: dist_sync runs under MXNet's launcher, which this process was not started by: "
                    "archspec launch -n 2 -s 1"),
    ("10^23 epochs", {"a.yaml": GOOD}, ["train", "{tmp}/a.yaml", "--epochs", str(10**23), "--out", "{tmp}/r"], 1,
     "--epochs: input should be less than or equal to 100000"),
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


@pytest.mark.slow
def test_the_zoo_keeps_its_bases_inside_its_folder():
    for path in sorted((ROOT / "specs").glob("*.yaml")):
        assert main(["validate", "-q", str(path)]) == 0, path


def test_a_negative_summary_depth_is_bad_usage(capsys):
    with pytest.raises(SystemExit) as e:
        main(["summary", str(ROOT / "specs" / "lenet.yaml"), "--depth", "-1"])
    assert e.value.code == 2 and "--depth: expected 0 (stages), 1 (their layers) or more, got '-1'" in \
        capsys.readouterr().err


def test_ctrl_c_while_sample_writes_leaves_no_file(tmp_path, capsys, monkeypatch):
    """Ctrl-C just after a file landed, before sample counted it (2 of 24 tries left it): a failpoint in the writer
    raises KeyboardInterrupt there, on the third file."""
    import archspec.files

    real, written = archspec.files.write_atomically, []

    def interrupted_after_the_third(path, data, inputs=()):
        real(path, data, inputs)
        written.append(path)
        if len(written) == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(archspec.files, "write_atomically", interrupted_after_the_third)
    space = str(ROOT / "specs" / "anynet-space.yaml")
    assert main(["sample", space, "-n", "5", "--out", str(tmp_path / "new" / "out")]) == 130
    assert len(written) == 3 and not (tmp_path / "new").exists()  # its files and the folders it made, gone
    (tmp_path / "empty").mkdir()
    written.clear()
    assert main(["sample", space, "-n", "5", "--out", str(tmp_path / "empty")]) == 130
    assert os.listdir(tmp_path / "empty") == []  # an empty folder the user made stays, empty


@pytest.mark.parametrize("out, message", [("/proc/archspec/run", "--out /proc/archspec/run: cannot create the run "
                                                                "folder (No such file or directory)"),
                                          ("{tmp}/a.yaml/run", "--out {tmp}/a.yaml/run: {tmp}/a.yaml is not a folder")])
def test_a_run_folder_that_cannot_be_made_is_said_as_such(tmp_path, capsys, digits, out, message):
    (tmp_path / "a.yaml").write_text(GOOD.replace("height: 8, width: 8", "height: 28, width: 28")
                                     .replace("dense: 3", "dense: 10"))
    before = snapshot(tmp_path)
    assert main(["train", str(tmp_path / "a.yaml"), "--data-dir", str(digits), "--epochs", "1", "--out",
                 out.format(tmp=tmp_path)]) == 1
    err = capsys.readouterr().err
    assert message.format(tmp=tmp_path) in err and "internal error" not in err, err
    assert snapshot(tmp_path) == before


SPACE = GOOD.replace("dense: 3", "dense: $units") + "args: {units: 3}\nspace:\n  vary:\n    units: {choice: [3, 4]}\n"
BIG = str(10**23)
BOUNDS = [  # (command, option and value, the message): each option's bound, declared once (train.config.Config,
    # train.search.Search), refused before the run folder, the study or the pack is made
    ("train", ["--lr", "nan"], "--lr: input should be a finite number, got nan"),
    ("train", ["--lr", "inf"], "--lr: input should be a finite number, got inf"),
    ("train", ["--lr", "-1"], "--lr: input should be greater than 0, got -1.0"),
    ("train", ["--lr", "1e308"], "--lr: input should be less than or equal to 10000, got 1e+308"),
    ("train", ["--lr", "1e-320"], "--lr: a rate that is 0 in the 32-bit floats of MXNet's optimizers (nothing would "
                                  "train); expected at least 1.2e-38, got 1e-320"),
    ("train", ["--batch-size", "0"], "--batch-size: input should be greater than or equal to 1, got 0"),
    ("train", ["--batch-size", "-3"], "--batch-size: input should be greater than or equal to 1, got -3"),
    ("train", ["--batch-size", BIG], f"--batch-size: input should be less than or equal to 65536, got {BIG}"),
    ("train", ["--epochs", "0"], "--epochs: input should be greater than or equal to 1, got 0"),
    ("train", ["--epochs", BIG], f"--epochs: input should be less than or equal to 100000, got {BIG}"),
    ("train", ["--momentum", "-0.1"], "--momentum: input should be greater than or equal to 0, got -0.1"),
    ("train", ["--momentum", "nan"], "--momentum: input should be a finite number, got nan"),
    ("train", ["--wd", "-1"], "--weight-decay: input should be greater than or equal to 0, got -1.0"),
    ("train", ["--wd", "nan"], "--weight-decay: input should be a finite number, got nan"),
    ("train", ["--workers", "-1"], "--workers: input should be greater than or equal to 0, got -1"),
    ("train", ["--test-fraction", "1.5"], "--test-fraction: input should be less than 1, got 1.5"),
    # MXNet's parameter parser failed on these rates after the run folder was made
    ("train", ["--lr-mult", "s=nan"], "--lr-mult s=nan: expected STAGE=FACTOR such as head=10, FACTOR a finite "
                                      "number, 0 or more"),
    ("train", ["--lr-mult", "s=inf"], "--lr-mult s=inf: expected STAGE=FACTOR such as head=10, FACTOR a finite"),
    ("train", ["--lr-mult", "s=1e308"], "--lr-mult s=1e308: a rate of 0.1 x 1e+308 = 1e+307, beyond 10000"),
    ("search", ["--trials", BIG], f"--trials: input should be less than or equal to 100000, got {BIG}"),
    ("search", ["--pruner-startup", BIG], f"--pruner-startup: input should be less than or equal to 100000"),
    ("search", ["--jobs", "0"], "--jobs: input should be greater than or equal to 1, got 0"),
    ("search", ["--lr", "nan"], "--lr: input should be a finite number, got nan"),
    ("search", ["--epochs", BIG], f"--epochs: input should be less than or equal to 100000, got {BIG}"),
    ("search", ["--batch-size", "0"], "--batch-size: input should be greater than or equal to 1, got 0"),
    ("search", ["--workers", "-1"], "--workers: input should be greater than or equal to 0, got -1"),
    ("search", ["--lr-mult", "s=nan"], "--lr-mult s=nan: expected STAGE=FACTOR such as head=10, FACTOR a finite"),
]


@pytest.mark.parametrize("command, option, message", BOUNDS, ids=[f"{c[0]} {' '.join(c[1])[:40]}" for c in BOUNDS])
def test_an_option_out_of_its_bounds_is_named_and_nothing_is_written(tmp_path, capsys, digits, command, option,
                                                                     message):
    (tmp_path / "a.yaml").write_text(SPACE if command == "search" else GOOD)
    before = snapshot(tmp_path)
    more = ["--trials", "1"] if command == "search" else []
    assert main([command, str(tmp_path / "a.yaml"), "--data-dir", str(digits), "--epochs", "1", "--out",
                 str(tmp_path / "r"), *more, *option]) == 1
    err = capsys.readouterr().err
    assert f"archspec: {message}" in err, err
    assert "Traceback" not in err and "internal error" not in err
    assert snapshot(tmp_path) == before and not (tmp_path / "r").exists()
