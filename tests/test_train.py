"""Training through the CLI on real data (scikit-learn's digits, written as IDX files like Fashion-MNIST's),
checkpoints that survive SIGKILL, and MXNet's distributed kvstore under its own launcher."""
import csv
import json
import shutil
import os
import signal
import subprocess
import sys
import time

import numpy as onp
import pytest
from mxnet import npx

from archspec.cli import main
from archspec.train.data import read_idx, write_idx
from archspec.train import latest_checkpoint
from conftest import ROOT

LENET = str(ROOT / "specs" / "lenet.yaml")
ARCHSPEC = [sys.executable, "-m", "archspec"]


def train_args(digits, out, *more, batch=32):
    return ["train", LENET, "--data-dir", str(digits), "--batch-size", str(batch), "--optimizer", "adam",
            "--lr", "0.005", "--out", str(out), *more]


def params(path):
    npx.set_np()
    return {k: v.asnumpy() for k, v in npx.load(str(path)).items()}


def test_idx_round_trip_and_refusals(tmp_path):
    images = onp.arange(2 * 3 * 4, dtype=onp.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "a.gz", images)
    assert onp.array_equal(read_idx(tmp_path / "a.gz"), images)
    (tmp_path / "b").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x05abc")
    from archspec import InputError
    with pytest.raises(InputError, match="truncated"):
        read_idx(tmp_path / "b")
    (tmp_path / "c").write_bytes(b"GIF89a")
    with pytest.raises(InputError, match="not an IDX file"):
        read_idx(tmp_path / "c")


@pytest.mark.slow
def test_lenet_learns_real_digits_through_the_cli(digits, tmp_path, capsys):
    started = time.perf_counter()
    assert main(train_args(digits, tmp_path / "run", "--epochs", "8")) == 0
    seconds = time.perf_counter() - started
    rows = list(csv.DictReader(open(tmp_path / "run" / "metrics.csv")))
    assert [int(r["epoch"]) for r in rows] == list(range(1, 9))
    accuracy = float(rows[-1]["test_acc"])
    print(f"LeNet on digits: test accuracy {accuracy:.3f} after 8 epochs in {seconds:.1f} s")
    assert accuracy >= 0.90
    run = tmp_path / "run"
    assert {"spec.yaml", "command.txt", "config.json", "metrics.json", "curves.png", "final.params",
            "checkpoints"} <= {p.name for p in run.iterdir()}
    assert (run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(list((run / "checkpoints").glob("*.json"))) == 3  # --keep 3
    assert json.loads((run / "metrics.json").read_text())[-1]["test_acc"] == pytest.approx(accuracy, abs=1e-6)
    capsys.readouterr()
    assert main(["evaluate", LENET, "--params", str(run / "final.params"), "--data-dir", str(digits)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["examples"] == 360 and report["accuracy"] == pytest.approx(accuracy, abs=1e-6)


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_ends_like_an_uninterrupted_run(digits, tmp_path):
    def command(out, *more):  # 180 steps per epoch, a checkpoint every 20 steps
        return ARCHSPEC + train_args(digits, out, "--epochs", "2", "--checkpoint-every", "20", "--keep", "2", *more,
                                     batch=8)

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    killed = tmp_path / "killed"
    marker = killed / "checkpoints" / "step-00000200.json"  # in epoch 2; a failpoint kills it there, at any load
    proc = subprocess.run(command(killed), env={**env, "ARCHSPEC_TEST_FAILPOINT": "checkpoint:200:1:KILL"},
                          stderr=subprocess.DEVNULL)
    assert proc.returncode == -signal.SIGKILL
    assert marker.exists() and not (killed / "final.params").exists(), "the process was not killed mid-run"
    last = latest_checkpoint(killed / "checkpoints")  # checks every file of the newest against its checksum
    assert last["epoch"] == 1 and 0 < last["step_in_epoch"] < 180  # mid-epoch
    for marker in (killed / "checkpoints").glob("*.json"):  # no checkpoint is half-written
        assert latest_checkpoint(killed / "checkpoints")["path"] >= str(marker.with_suffix(""))
        assert marker.with_suffix(".params").exists() and marker.with_suffix(".states").exists()

    resumed = subprocess.run(command(killed, "--resume"), env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"resuming {killed} at epoch 2" in resumed.stderr
    straight = subprocess.run(command(tmp_path / "straight"), env=env, capture_output=True, text=True)
    assert straight.returncode == 0, straight.stderr[-2000:]
    a, b = params(killed / "final.params"), params(tmp_path / "straight" / "final.params")
    assert a.keys() == b.keys() and all(onp.array_equal(a[k], b[k]) for k in a)  # bit for bit
    assert (killed / "metrics.csv").read_text().splitlines()[0].startswith("epoch,train_loss")


@pytest.mark.slow
def test_a_resumed_run_takes_its_weights_from_the_checkpoint_not_from_its_init_file(digits, tmp_path, capsys):
    assert main(train_args(digits, tmp_path / "pre", "--epochs", "1")) == 0
    init = tmp_path / "pre" / "final.params"
    assert main(train_args(digits, tmp_path / "run", "--epochs", "1", "--init", str(init))) == 0
    assert f"transferred 10/10 arrays from {init}" in capsys.readouterr().err
    init.unlink()  # the checkpoint holds the weights: the file --init named may be gone
    assert main(train_args(digits, tmp_path / "run", "--epochs", "2", "--init", str(init), "--resume")) == 0
    err = capsys.readouterr().err
    assert f"resuming {tmp_path / 'run'} at epoch 2" in err and "transferred" not in err
    assert len(json.loads((tmp_path / "run" / "metrics.json").read_text())) == 2
    # a run's folder says first whether --resume's settings are its own, before any --init file is read
    shutil.rmtree(tmp_path / "run" / "checkpoints")
    assert main(train_args(digits, tmp_path / "run", "--epochs", "3", "--init", str(tmp_path / "nope"),
                           "--resume")) == 1
    err = capsys.readouterr().err
    assert "--resume continues a run with the same settings" in err and "init:" in err
    assert "no such parameters file" not in err and "transferred" not in err


@pytest.mark.slow
def test_resume_refuses_other_settings_another_network_or_a_corrupt_checkpoint(digits, tmp_path, capsys):
    assert main(train_args(digits, tmp_path / "run", "--epochs", "1")) == 0
    capsys.readouterr()
    assert main(train_args(digits, tmp_path / "run", "--epochs", "1", "--resume", "--lr", "0.1")) == 1
    assert "same settings" in capsys.readouterr().err
    wider = train_args(digits, tmp_path / "run", "--epochs", "2", "--resume", "--set", "stages.features.0.channels=8")
    assert main(wider) == 1
    err = capsys.readouterr().err
    assert "different shapes" in err and "features.0.weight" in err
    (checkpoint,) = (tmp_path / "run" / "checkpoints").glob("*.params")
    checkpoint.write_bytes(checkpoint.read_bytes()[:100])
    assert main(train_args(digits, tmp_path / "run", "--epochs", "2", "--resume")) == 1
    assert "corrupt" in capsys.readouterr().err


def test_an_existing_run_folder_is_not_overwritten(digits, tmp_path, capsys):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "notes.txt").write_text("mine")
    assert main(train_args(digits, tmp_path / "run", "--epochs", "1")) == 1
    assert "not empty" in capsys.readouterr().err and os.listdir(tmp_path / "run") == ["notes.txt"]


@pytest.mark.slow
def test_dist_sync_with_mxnets_launcher_two_workers_one_server(digits, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = ARCHSPEC + ["launch", "-n", "2", "-s", "1", "--launcher", "local", "--",
                          *ARCHSPEC, *train_args(digits, tmp_path / "dist", "--epochs", "1", "--kvstore", "dist_sync")]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    a, b = (params(tmp_path / "dist" / f"worker-{rank}" / "final.params") for rank in (0, 1))
    assert a.keys() == b.keys() and all(onp.array_equal(a[k], b[k]) for k in a)
    before = params_of_initial(tmp_path)
    assert any(not onp.array_equal(a[k], before[k]) for k in a)  # it did train


@pytest.mark.slow
def test_launch_fails_when_its_workers_fail(digits, tmp_path):
    """Each worker refuses its --init file before writing anything; the launcher used to exit 0 all the same (the
    tracker's threads raised, printing a traceback with the whole environment)."""
    command = ARCHSPEC + ["launch", "-n", "2", "-s", "1", "--launcher", "local", "--",
                          *ARCHSPEC, *train_args(digits, tmp_path / "dist", "--epochs", "1", "--kvstore", "dist_sync",
                                                 "--init", str(tmp_path / "missing.params"))]
    done = subprocess.run(command, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 1
    assert "missing.params: no such parameters file or run folder" in done.stderr
    assert "archspec: launch: worker 0 exited with code 1, worker 1 exited with code 1" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "dist").exists()


def params_of_initial(tmp_path):
    import mxnet as mx

    from archspec import build_model
    mx.random.seed(0)
    build_model(LENET).save_parameters(str(tmp_path / "initial.params"))
    return params(tmp_path / "initial.params")


@pytest.mark.slow
def test_ctrl_c_says_where_the_run_stopped_and_how_to_resume(digits, tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen(ARCHSPEC + train_args(digits, out, "--epochs", "50"), stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1",  # Ctrl-C once the first checkpoint is made:
                                 "ARCHSPEC_TEST_FAILPOINT": "checkpoint:45:1:INT"},  # end of epoch 1 (45 steps)
                            # a background CI job ignores SIGINT: as in a terminal
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    err = proc.communicate(timeout=600)[1]
    assert proc.returncode == 130
    assert "interrupted in epoch" in err and "--resume" in err and "Traceback" not in err


def test_a_missing_dataset_is_a_clear_error_and_creates_no_run_folder(tmp_path, capsys):
    (tmp_path / "data").mkdir()
    assert main(["train", LENET, "--data-dir", str(tmp_path / "data"), "--out", str(tmp_path / "run")]) == 1
    assert "no train-images-idx3-ubyte" in capsys.readouterr().err and not (tmp_path / "run").exists()


@pytest.mark.slow
def test_a_spec_with_auxiliary_heads_trains_on_their_weighted_losses(digits, tmp_path, write_spec):
    spec = write_spec("""name: tapped
input: {channels: 1, height: 28, width: 28}
stages:
  body:
    - conv: {channels: 8, kernel: 3, padding: 1, activation: relu}
    - maxpool: {kernel: 2}
    - conv: {channels: 16, kernel: 3, padding: 1, activation: relu}
  head: [global_avg_pool, {dense: 10}]
aux:
  side: {after: body.1, weight: 0.3, layers: [global_avg_pool, {dense: 10}]}
""")
    args = train_args(digits, tmp_path / "run", "--epochs", "1")
    args[1] = str(spec)
    assert main(args) == 0
    saved = params(tmp_path / "run" / "final.params")
    assert "side.1.weight" in saved and saved["side.1.weight"].any()
    import mxnet as mx

    from archspec import build_model
    mx.random.seed(0)  # as `train` does: the initial weights of the run
    initial = build_model(spec)
    # the head's loss reached it: without it its gradient would be zero and Adam would not move it
    assert not onp.array_equal(saved["side.1.weight"], initial.side[1].weight.data().asnumpy())


@pytest.mark.parametrize("option, value, message", [
    ("--batch-size", "-5", "--batch-size: input should be greater than or equal to 1, got -5"),
    ("--keep", "0", "--keep: input should be greater than or equal to 1"),
    ("--keep", "-1", "--keep: input should be greater than or equal to 1"),
    ("--checkpoint-every", "-1", "--checkpoint-every: input should be greater than or equal to 0"),
    # 10^30 steps between checkpoints was accepted (and the run trained, never checkpointing): a typo, as is keeping
    # 10^30 checkpoints
    ("--checkpoint-every", "1" + "0" * 30, "--checkpoint-every: input should be less than or equal to 99999999, got "
                                          "1000000000000000000000000000000"),
    ("--keep", "1" + "0" * 30, "--keep: input should be less than or equal to 99999999"),
    ("--resize", "0", "--resize: input should be greater than or equal to 1"),
    ("--lr", "nan", "--lr: input should be a finite number"), ("--lr", "0", "--lr: input should be greater than 0"),
    ("--epochs", "0", "--epochs: input should be greater than or equal to 1"),
    ("--kvstore", "bogus", "invalid choice: 'bogus'"), ("--ctx", "tpu:0", "--ctx: expected cpu, gpu:0 or gpu:0,1")])
def test_bad_settings_are_refused_before_anything_is_written(digits, tmp_path, capsys, option, value, message):
    code = None
    try:
        code = main(train_args(digits, tmp_path / "run", option, value))
    except SystemExit as e:  # argparse: a value outside the choices is bad usage
        code = e.code
    assert code in (1, 2)
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("ctx", ["cpu:0,gpu:1", "gpu:0,cpu:1", "gpu:", "gpu:0,,1", "cpu,gpu:0"])
def test_devices_of_two_kinds_are_refused_by_the_option_and_the_parser(ctx):
    # `cpu:0,gpu:1` once passed --ctx's check and trained on two CPUs
    from pydantic import ValidationError

    from archspec.spec.diagnostics import InputError
    from archspec.train import Config, parse_contexts

    with pytest.raises(ValidationError, match="expected cpu, gpu:0 or gpu:0,1"):
        Config(ctx=ctx)
    with pytest.raises(InputError, match="--ctx: expected cpu, gpu:0 or gpu:0,1"):
        parse_contexts(ctx)


def test_devices_are_parsed_into_one_kind_and_numbers():
    import mxnet as mx

    from archspec.train import Config, parse_contexts

    assert (Config(ctx="gpu:0,gpu:1").devices.kind, Config(ctx="gpu:0,gpu:1").devices.ids) == ("gpu", (0, 1))
    assert Config(ctx="gpu:0,1").devices == Config(ctx="gpu:0,gpu:1").devices
    assert parse_contexts("cpu") == [mx.cpu(0)] and parse_contexts("cpu:0,1") == [mx.cpu(0), mx.cpu(1)]


# ---------------------------------------------------------------------------------------------------
# Nothing wrong is accepted, nothing is lost: data, one run per folder, resume identity.

def copy_digits(digits, folder, change=None):
    """The digits dataset in another folder, with `change(name, array)` applied to its arrays."""
    folder.mkdir()
    for path in digits.iterdir():
        array = read_idx(path)
        write_idx(folder / path.name, change(path.name, array) if change else array)
    return folder


@pytest.mark.parametrize("change, message", [
    (lambda name, a: onp.where(onp.arange(len(a)) == 3, 10, a).astype(a.dtype) if "labels" in name else a,
     "label 10 (example 3, and 0 more) is outside 0..9; the network has 10 outputs"),
    (lambda name, a: (a - 1).astype(onp.int32) if "labels" in name else a, "is outside 0..9"),
    (lambda name, a: a[:0], "no examples"),
], ids=["label too large", "negative label", "empty"])
def test_data_a_network_cannot_learn_from_is_refused_before_the_run_folder(digits, tmp_path, capsys, change, message):
    data = copy_digits(digits, tmp_path / "data", change)
    args = train_args(data, tmp_path / "run", "--epochs", "1")
    assert main(args) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("content, message", [
    (b"\x1f\x8b\x08\x00" + b"garbage" * 20, "cannot read IDX data"),
    (b"\x00\x00\x08\x04" + b"\xff\xff\xff\xff" * 4, "more than archspec reads"),
], ids=["garbage gzip", "dimensions that overflow"])
def test_corrupt_idx_files_are_reported_with_the_file(digits, tmp_path, capsys, content, message):
    data = copy_digits(digits, tmp_path / "data")
    images = next(data.glob("train-images*"))
    images.unlink()
    target = data / ("train-images-idx3-ubyte.gz" if content.startswith(b"\x1f\x8b") else "train-images-idx3-ubyte")
    target.write_bytes(content)
    assert main(train_args(data, tmp_path / "run", "--epochs", "1")) == 1
    err = capsys.readouterr().err
    assert str(target) in err and message in err and "internal error" not in err
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_two_runs_into_one_folder_one_trains_the_other_is_refused(digits, tmp_path):
    command = ARCHSPEC + train_args(digits, tmp_path / "run", "--epochs", "2")
    # the first stops itself at its first checkpoint, holding the folder, until the second has tried: they overlap
    # at any load (a failpoint, not a race between two starts)
    with open(tmp_path / "first.err", "w") as log:  # a file, not a pipe that a stopped reader could leave full
        first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log,
                                 env={**os.environ, "ARCHSPEC_TEST_FAILPOINT": "checkpoint:45:1:STOP"})
        try:
            _, status = os.waitpid(first.pid, os.WUNTRACED)  # returns once it has stopped
            assert os.WIFSTOPPED(status), status
            second = subprocess.run(command, capture_output=True, text=True, timeout=300)
        finally:
            os.kill(first.pid, signal.SIGCONT)  # a stopped first never outlives the test
        results = [(first.wait(timeout=300), (tmp_path / "first.err").read_text()), (second.returncode, second.stderr)]
    assert sorted(code for code, _ in results) == [0, 1], results
    refused = next(err for code, err in results if code == 1)
    assert "another run is using this folder (PID " in refused and "archspec train" in refused


@pytest.mark.slow
def test_resume_refuses_another_network_or_other_data_and_a_finished_run(digits, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(train_args(digits, run, "--epochs", "1")) == 0
    before = {p.name: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    capsys.readouterr()
    relu = "stages.features.0.activation=relu"  # no parameter changes shape: only the identity check sees it
    assert main(train_args(digits, run, "--epochs", "2", "--resume", "--set", relu)) == 1
    assert 'it differs (saved -> now): stages.features.0.activation: "sigmoid" -> "relu"' in capsys.readouterr().err
    other = copy_digits(digits, tmp_path / "other", lambda name, a: a[::-1].copy() if "t10k-labels" in name else a)
    assert main(train_args(other, run, "--epochs", "2", "--resume")) == 1
    assert "these differ (saved, now): data.test.labels: " in capsys.readouterr().err
    assert main(train_args(digits, run, "--epochs", "1", "--resume")) == 1
    assert "it finished 1 epoch(s)" in capsys.readouterr().err
    after = {p.name: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    assert after == before  # refused runs change nothing
    (run / ".archspec-leftover").write_bytes(b"from a killed run")
    assert main(train_args(digits, run, "--epochs", "2", "--resume")) == 0  # extending is fine
    assert not (run / ".archspec-leftover").exists()


def test_evaluate_refuses_parameters_that_give_no_loss_and_prints_no_broken_json(digits, tmp_path, capsys):
    net = build_lenet()
    weight = net.collect_params()[next(iter(net.collect_params()))]
    weight.set_data(weight.data() * float("nan"))  # what a bit flip in an exponent does
    net.save_parameters(str(tmp_path / "broken.params"))
    from PIL import Image

    Image.new("L", (28, 28)).save(tmp_path / "image.png")
    for command in (["evaluate", LENET, "--data-dir", str(digits)], ["evaluate", LENET, "--data-dir", str(digits),
                    "--rewrites", "none"], ["predict", LENET, str(tmp_path / "image.png")]):
        # refused at load: oneDNN's fused graph, the default for inference, turns NaN weights into finite scores
        assert main(command + ["--params", str(tmp_path / "broken.params")]) == 1
        out = capsys.readouterr()
        assert out.out == "" and "broken.params: NaN or infinite values in features.0.weight (corrupt" in out.err


def test_out_that_is_a_file_is_refused(digits, tmp_path, capsys):
    (tmp_path / "run").write_text("notes")
    assert main(train_args(digits, tmp_path / "run", "--epochs", "1")) == 1
    assert "not a folder" in capsys.readouterr().err and (tmp_path / "run").read_text() == "notes"


def build_lenet():
    from archspec import build_model

    return build_model(LENET)


@pytest.mark.slow
def test_a_checkpoint_record_of_the_wrong_shape_is_corrupt(digits, tmp_path, capsys):
    assert main(train_args(digits, tmp_path / "run", "--epochs", "1")) == 0
    (record,) = (tmp_path / "run" / "checkpoints").glob("*.json")
    record.write_text('{"epoch": "one", "sha256": {}}')
    capsys.readouterr()
    assert main(train_args(digits, tmp_path / "run", "--epochs", "2", "--resume")) == 1
    assert "corrupt checkpoint record" in capsys.readouterr().err


def test_a_run_recorded_before_the_data_named_its_classes_still_resumes(tmp_path):
    from archspec.train import Config
    from archspec.train.folder import RunFolder

    split = {"examples": 3, "images": "a", "labels": "b"}
    old = {"network": {"name": "n"}, "data": {"train": split, "test": split}}  # an earlier archspec's record: no class names
    folder = RunFolder(tmp_path, "archspec train")
    folder.record(Config(), old)
    folder.release()
    named = {**split, "classes": ["t-shirt", "trouser"]}
    again = RunFolder(tmp_path, "archspec train --resume")
    again.check(Config(), {"network": {"name": "n"}, "data": {"train": named, "test": named}}, True, 0, False)
    from archspec import InputError

    with pytest.raises(InputError, match="data.train.images"):
        changed = {"network": {"name": "n"}, "data": {"train": {**named, "images": "c"}, "test": named}}
        again.check(Config(), changed, True, 0, False)


# ---------------------------------------------------------------------------------------------------
# A run whose loss or weights become infinite or NaN stops, says where and why, and writes none of them.

def finite_params(path):
    return all(onp.isfinite(a).all() for a in params(path).values())


def diverge(digits, run, capsys):
    # weight decay 1 at lr 100 multiplies every weight by -99 a step: float32 overflows in about 20 steps, whatever
    # the gradients (this ended with NaN weights, NaN metrics and exit 0)
    args = ["train", LENET, "--data-dir", str(digits), "--batch-size", "32", "--lr", "100", "--wd", "1", "--epochs",
            "2", "--checkpoint-every", "5", "--out", str(run)]
    assert main(args) == 1
    return capsys.readouterr().err


def test_a_diverging_run_stops_at_its_step_and_keeps_the_good_checkpoints(digits, tmp_path, capsys):
    run = tmp_path / "run"
    err = diverge(digits, run, capsys)
    assert "archspec: training diverged: the training loss became nan in epoch 1 at step " in err, err
    assert "(learning rate 100, weight decay 1). Lower --lr (e.g. 10) or --wd." in err and "Traceback" not in err
    last = latest_checkpoint(run / "checkpoints")  # complete and checked against its checksums
    assert f"--init {last['path']}.params, a lower --lr and a new --out" in err
    step = int(err.split("in epoch 1 at step ")[1].split(" ")[0])
    assert last["epoch"] == 0 and last["step"] == (step - 1) // 5 * 5  # the last checkpoint before it
    assert all(finite_params(p) for p in (run / "checkpoints").glob("*.params"))  # none of NaN weights
    assert not (run / "final.params").exists() and not (run / "metrics.csv").exists()  # no epoch finished
    assert not [p for p in run.rglob(".archspec-*")]  # nothing half-written


@pytest.mark.slow
def test_the_last_good_checkpoint_of_a_diverged_run_starts_a_new_one_as_advised(digits, tmp_path, capsys):
    diverge(digits, tmp_path / "run", capsys)
    last = latest_checkpoint(tmp_path / "run" / "checkpoints")
    assert main(["train", LENET, "--data-dir", str(digits), "--batch-size", "32", "--lr", "0.1", "--epochs", "1",
                 "--init", f"{last['path']}.params", "--out", str(tmp_path / "again")]) == 0
    assert finite_params(tmp_path / "again" / "final.params")


def test_weights_that_became_nan_are_never_checkpointed(digits, tmp_path, monkeypatch, capsys):
    """An update that overflows the weights while the step's loss (computed before it) was finite: the checkpoint
    after it is refused, the ones before stay."""
    import archspec.train.loop as loop

    step, steps = loop._step, []

    def overflowing(net, *rest):  # the third update overflows a weight
        result = step(net, *rest)
        steps.append(1)
        if len(steps) == 3:
            weight = net.collect_params()[next(iter(net.collect_params()))]
            weight.set_data(weight.data() * float("inf"))
        return result

    monkeypatch.setattr(loop, "_step", overflowing)
    run = tmp_path / "run"
    assert main(train_args(digits, run, "--epochs", "1", "--checkpoint-every", "1")) == 1
    err = capsys.readouterr().err
    assert "training diverged: the weights became infinite or NaN in epoch 1 at step 3 (learning rate 0.005)" in err
    assert sorted(p.name for p in (run / "checkpoints").glob("*.json")) == ["step-00000001.json",
                                                                             "step-00000002.json"]
    assert all(finite_params(p) for p in (run / "checkpoints").glob("*.params"))
    assert not (run / "final.params").exists()
