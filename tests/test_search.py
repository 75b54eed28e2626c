"""`archspec search` end to end on real data (scikit-learn's digits as IDX files): trials trained as `archspec
train` trains them, a weak one stopped by the pruner, a SIGKILL in the middle then a resume that finishes the
interrupted trial and loses or repeats none, two workers on one storage, the report, and PostgreSQL."""
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import pytest

from archspec import load_spec
from archspec.cli import main
from archspec.train.search import counted
from precision import digits_folder  # bench/precision.py

ARCHSPEC = [sys.executable, "-m", "archspec"]
SPACE = """\
name: small
input: {channels: 1, height: 28, width: 28}
args: {c1: 6, c2: 16, units: 32}
stages:
  features:
    - conv: {channels: $c1, kernel: 5, padding: 2, activation: relu}
    - maxpool: {kernel: 2, stride: 2}
    - conv: {channels: $c2, kernel: 5, activation: relu}
    - maxpool: {kernel: 2, stride: 2}
  head:
    - flatten
    - dense: {units: $units, activation: relu}
    - dense: 10
space:
  vary:
    c1: {choice: [1, 2, 4, 8]}       # a network of one or two channels is weak: the pruner's to stop
    c2: {int: [2, 16], step: 2}
    units: {int: [4, 64], log: true}
  constraints: [c2 >= c1]
  budget: {max_params: 30000}
"""


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return digits_folder(tmp_path_factory.mktemp("digits"))


def search(space, digits, out, storage, *more, trials=12, epochs=2):
    return ["search", str(space), "--trials", str(trials), "--epochs", str(epochs), "--data-dir", str(digits),
            "--out", str(out), "--storage", storage, "--study", "small", "--batch-size", "32", "--optimizer", "adam",
            "--lr", "0.005", "--pruner-startup", "2", *more]


def trials(storage):
    return optuna.load_study(study_name="small", storage=storage).get_trials()


def trained(storage):
    return [t for t in trials(storage) if t.state.name in ("COMPLETE", "PRUNED") and "rejected" not in t.user_attrs]


@pytest.mark.slow
def test_search_prunes_survives_a_sigkill_resumes_and_reports(digits, tmp_path, capsys):
    (tmp_path / "space.yaml").write_text(SPACE)
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    argv = search(tmp_path / "space.yaml", digits, tmp_path / "runs", storage, "--search-seed", "0",
                  "--checkpoint-every", "10")  # 45 steps an epoch: checkpoints at steps 10, 20, ..., 45, 50, ...
    started = time.perf_counter()
    # killed while a trial is half trained: past the pruner's look after epoch 1, in the middle of epoch 2 (step 50
    # of 90), the third trial to get there; a failpoint sends the SIGKILL at that moment, whatever the load
    env = {**os.environ, "ARCHSPEC_TEST_FAILPOINT": "checkpoint:50:3:KILL"}
    worker = subprocess.Popen(ARCHSPEC + argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    stderr = worker.communicate()[1]
    assert worker.returncode == -signal.SIGKILL, stderr[-2000:]
    (victim,) = [t.number for t in trials(storage) if t.state.name == "RUNNING"]
    steps = [int(p.name[5:13]) for p in Path(trials(storage)[victim].user_attrs["folder"]).glob(
        "run/checkpoints/step-*.json")]
    assert max(steps) == 50 and len(trained(storage)) >= 2
    before = {t.number: t.state.name for t in trials(storage)}
    assert before[victim] == "RUNNING" and len(trained(storage)) < 12

    assert main(argv) == 0  # the same command again: resumes
    err = capsys.readouterr().err
    assert f"trial {victim}: its worker (PID {worker.pid}) died; finishing it" in err
    after = trials(storage)
    assert {t.number: t.state.name for t in after if t.number in before and before[t.number] != "RUNNING"} == {
        n: s for n, s in before.items() if s != "RUNNING"}  # nothing finished before was run again
    assert [t.state.name for t in after if t.number == victim] in (["COMPLETE"], ["PRUNED"])
    assert not [t for t in after if t.state.name in ("RUNNING", "FAIL")]
    done = trained(storage)
    assert len(done) == 12 == counted(optuna.load_study(study_name="small", storage=storage))
    folders = [t.user_attrs["folder"] for t in done]
    assert len(set(folders)) == 12 and all(Path(f, "spec.yaml").is_file() for f in folders)
    victim_run = Path(next(t.user_attrs["folder"] for t in done if t.number == victim), "run")
    assert len((victim_run / "command.txt").read_text().splitlines()) == 2  # started, then resumed
    assert any(l.startswith("resuming") for l in (victim_run.parent / "train.log").read_text().splitlines())
    pruned = [t for t in done if t.state.name == "PRUNED"]
    assert pruned, "the median pruner stopped no trial"
    for t in pruned:  # stopped after its first epoch, with the accuracy it reported
        assert len(json.loads(Path(t.user_attrs["folder"], "run", "metrics.json").read_text())) == 1
    complete = [t for t in done if t.state.name == "COMPLETE"]
    for t in complete:  # trained as `archspec train` trains: two epochs, and the value is the last test accuracy
        history = json.loads(Path(t.user_attrs["folder"], "run", "metrics.json").read_text())
        assert len(history) == 2 and t.values[0] == pytest.approx(history[-1]["test_acc"])
        assert t.user_attrs["network"]["params"] <= 30000 and t.params["c2"] >= t.params["c1"]
    print(f"search of 12 trials x 2 epochs with a SIGKILL and a resume: {time.perf_counter() - started:.1f} s")
    rejected = [t.number for t in after if "rejected" in t.user_attrs]
    assert not [n for n in rejected if (tmp_path / "runs" / "small" / f"trial-{n:04d}").exists()]

    assert main(["search", "--report", "--storage", storage, "--study", "small", "--study", "small", "--report-out",
                 str(tmp_path / "report")]) == 0  # a study named twice is reported once
    out = capsys.readouterr().out
    assert "base" in out and "pruned" in out and f"{len(trials(storage))} trials:" in out
    for picture in ("pareto.png", "ecdf.png"):
        assert (tmp_path / "report" / picture).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    best = load_spec(tmp_path / "report" / "best.yaml")
    top = max(complete, key=lambda t: t.values[0])
    assert best.name == f"small-{top.number:04d}"


@pytest.mark.slow
def test_two_workers_share_one_storage(digits, tmp_path):
    (tmp_path / "space.yaml").write_text(SPACE)
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    argv = search(tmp_path / "space.yaml", digits, tmp_path / "runs", storage, "--jobs", "2", "--search-seed", "1",
                  trials=6, epochs=1)
    proc = subprocess.run(ARCHSPEC + argv, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    done = trained(storage)
    assert 6 <= len(done) <= 7  # two workers may each start the last trial at once, as with Optuna's own
    assert len({t.user_attrs["pid"] for t in done}) == 2
    assert len({t.user_attrs["folder"] for t in done}) == len(done)
    assert not [t for t in trials(storage) if t.state.name in ("RUNNING", "FAIL")]


def _postgres_bin():
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    initdb = found[-1] if found else shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@pytest.fixture
def postgres():
    """A PostgreSQL server of our own on a free localhost port, in a temporary folder; stopped at the end."""
    bin_dir = _postgres_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL is not installed (initdb not found; apt-get install -y postgresql)")
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []  # initdb refuses to run as root
    folder = tempfile.mkdtemp(prefix="archspec-pg-")
    if as_user:
        shutil.chown(folder, "postgres")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = os.path.join(folder, "data")

    def run(*command):
        done = subprocess.run(as_user + [str(c) for c in command], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"{command[0]}: {done.stdout}{done.stderr}"

    try:
        run(bin_dir / "initdb", "-D", data, "-U", "archspec", "--auth=trust")
        run(bin_dir / "pg_ctl", "-D", data, "-l", os.path.join(folder, "log"), "-w", "-o",
            f"-p {port} -k {folder} -c listen_addresses=127.0.0.1", "start")
        run(bin_dir / "createdb", "-h", "127.0.0.1", "-p", port, "-U", "archspec", "studies")
        yield f"postgresql://archspec@127.0.0.1:{port}/studies"
    finally:
        subprocess.run(as_user + [str(bin_dir / "pg_ctl"), "-D", data, "-m", "immediate", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow
def test_search_on_postgresql_for_accuracy_and_macs(digits, tmp_path, postgres, capsys):
    """A study on a PostgreSQL server, as machines share one; two objectives: NSGA-II, accuracy and MACs."""
    (tmp_path / "space.yaml").write_text(SPACE)
    argv = search(tmp_path / "space.yaml", digits, tmp_path / "runs", postgres, "--objectives", "accuracy,macs",
                  trials=3, epochs=1)
    assert main(argv) == 0
    done = trained(postgres)
    assert len(done) == 3 and {t.state.name for t in done} == {"COMPLETE"}  # two objectives: nothing pruned
    for t in done:
        history = json.loads(Path(t.user_attrs["folder"], "run", "metrics.json").read_text())
        assert t.values == [pytest.approx(history[-1]["test_acc"]), t.user_attrs["network"]["macs"]]
    assert main(["search", "--report", "--storage", postgres, "--study", "small", "--report-out",
                 str(tmp_path / "report")]) == 0
    assert load_spec(tmp_path / "report" / "best.yaml").name.startswith("small-")


@pytest.mark.slow
@pytest.mark.parametrize("case, fragment", [
    ("storage", "--storage postgresql://nobody@127.0.0.1:1/none: cannot open it"),
    ("data", "no-such-folder"),
    ("space", "space.yaml:17:9: space.vary.c2: step 5 does not divide"),
    ("trials", "--trials: input should be greater than or equal to 1"),
])
def test_a_search_that_cannot_start_says_why_and_writes_nothing(tmp_path, digits, capsys, case, fragment):
    (tmp_path / "space.yaml").write_text(SPACE.replace("step: 2", "step: 5") if case == "space" else SPACE)
    before = sorted(tmp_path.rglob("*"))
    code = main(["search", str(tmp_path / "space.yaml"), "--epochs", "1", "--trials", "1",
                 "--out", str(tmp_path / "runs"), "--data-dir", str(tmp_path / "no-such-folder" if case == "data"
                                                                     else digits),
                 *(["--storage", "postgresql://nobody@127.0.0.1:1/none"] if case == "storage" else []),
                 *(["--trials", "0"] if case == "trials" else [])])
    err = capsys.readouterr().err
    assert code == 1 and fragment in err, err
    assert "Traceback" not in err and sorted(tmp_path.rglob("*")) == before


def test_a_report_of_no_storage_creates_none(tmp_path, capsys):
    assert main(["search", "--report", "--out", str(tmp_path / "runs")]) == 1
    assert "no study database at" in capsys.readouterr().err and not (tmp_path / "runs").exists()


def test_an_unknown_objective_is_bad_usage(capsys):
    with pytest.raises(SystemExit) as exit:
        main(["search", "space.yaml", "--objectives", "accuracy,speed"])
    assert exit.value.code == 2 and "accuracy,macs" in capsys.readouterr().err


def test_an_interrupted_search_says_how_to_resume(tmp_path, monkeypatch, capsys):
    """Issue 15, defect 11: ^C in a trial was an internal error that told of a --resume search does not have."""
    import archspec.train.search as searching
    from archspec.train.loop import TrainingInterrupted

    def interrupted(settings, worker=0):
        raise TrainingInterrupted("interrupted at epoch 1. Continue with the same command and --resume")

    monkeypatch.setattr(searching, "run", interrupted)
    (tmp_path / "space.yaml").write_text(SPACE)
    assert main(["search", str(tmp_path / "space.yaml"), "--out", str(tmp_path / "runs")]) == 130
    err = capsys.readouterr().err
    assert err == "archspec: interrupted; run the same command again to resume the search\n"


def test_a_storage_that_is_not_a_study_database_is_refused_and_left_alone(tmp_path, digits, capsys):
    """Defects 12 and 13: a corrupt file, a path under a file, another program's database, a study in memory; a
    report that created Optuna's tables in an unrelated database; a missing folder created outside --out."""
    import sqlite3

    (tmp_path / "space.yaml").write_text(SPACE)
    (tmp_path / "corrupt.db").write_text("garbage\n")
    (tmp_path / "afile").write_text("mine")
    with sqlite3.connect(tmp_path / "other.db") as db:
        db.execute("CREATE TABLE mine (x)")
    db.close()
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    for url, fragment in [(f"sqlite:///{tmp_path / 'corrupt.db'}", "is not an SQLite database"),
                          (f"sqlite:///{tmp_path / 'afile' / 'x.db'}", "no folder"),
                          (f"sqlite:///{tmp_path / 'missing' / 'dir' / 'x.db'}", "no folder"),
                          (f"sqlite:///{tmp_path / 'other.db'}", "a database of something else than Optuna's"),
                          ("sqlite://", "a study in memory is lost"), ("sqlite:///:memory:", "a study in memory")]:
        code = main(search(tmp_path / "space.yaml", digits, tmp_path / "runs", url, trials=1, epochs=1))
        err = capsys.readouterr().err
        assert code == 1 and fragment in err and "internal error" not in err, (url, err)
        code = main(["search", "--report", "--storage", url, "--study", "small", "--report-out",
                     str(tmp_path / "report")])
        err = capsys.readouterr().err
        assert code == 1 and err.startswith("archspec: ") and "internal error" not in err, (url, err)
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "corrupt.db", "other.db", "space.yaml"]


@pytest.mark.slow
def test_a_changed_space_under_the_same_study_is_refused_before_anything_is_written(tmp_path, digits, capsys):
    """Defect 14: c1 changed from a choice to a range: Optuna's ValueError, a FAIL trial, the study's space
    overwritten."""
    from archspec.train.config import Config
    from archspec.train.search import Search, Settings, open_study

    (tmp_path / "space.yaml").write_text(SPACE)
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    open_study(Settings(str(tmp_path / "space.yaml"), "small", Search(storage=storage), Config()))
    (tmp_path / "changed.yaml").write_text(SPACE.replace("c1: {choice: [1, 2, 4, 8]}", "c1: {int: [1, 8]}"))
    code = main(search(tmp_path / "changed.yaml", digits, tmp_path / "runs", storage, trials=1, epochs=1))
    err = capsys.readouterr().err
    assert code == 1 and "study 'small' searched another space (c1: " in err and "choose another --study" in err, err
    study = optuna.load_study(study_name="small", storage=storage)
    assert study.trials == [] and study.user_attrs["space"] == str(tmp_path / "space.yaml")
    assert not (tmp_path / "runs").exists()


def test_a_report_out_that_is_a_file_is_refused(tmp_path, capsys):
    from archspec.train.config import Config
    from archspec.train.search import Search, Settings, open_study

    (tmp_path / "space.yaml").write_text(SPACE)
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    open_study(Settings(str(tmp_path / "space.yaml"), "small", Search(storage=storage), Config()))
    (tmp_path / "afile").write_text("mine")
    code = main(["search", "--report", "--storage", storage, "--study", "small", "--report-out",
                 str(tmp_path / "afile")])
    err = capsys.readouterr().err
    assert code == 1 and f"--report-out {tmp_path / 'afile'}: not a folder" in err
    assert (tmp_path / "afile").read_text() == "mine"


@pytest.mark.slow
def test_a_database_server_that_never_answers_is_given_up_after_a_timeout(monkeypatch, capsys):
    """Defect 15: a PostgreSQL server that accepted the connection and never answered blocked for 132 s."""
    import archspec.train.search as searching

    assert searching.engine_kwargs("postgresql://u@db:5432/s")["connect_args"] == {
        "connect_timeout": searching.CONNECT_TIMEOUT} and searching.CONNECT_TIMEOUT <= 10
    pytest.importorskip("psycopg")
    monkeypatch.setattr(searching, "CONNECT_TIMEOUT", 2)
    with socket.socket() as server:  # accepts (the kernel does), never answers
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        port = server.getsockname()[1]
        started = time.perf_counter()
        code = main(["search", "--report", "--storage", f"postgresql://nobody:secret@127.0.0.1:{port}/none",
                     "--study", "small"])
        seconds = time.perf_counter() - started
    err = capsys.readouterr().err
    assert code == 1 and f"--storage postgresql://nobody:***@127.0.0.1:{port}/none: cannot open it" in err, err
    assert seconds < 30 and "secret" not in err


@pytest.mark.slow
def test_a_rejected_trial_leaves_no_folder(tmp_path):
    from archspec.spec.space import load_space
    from archspec.train.config import Config
    from archspec.train.search import Search, Settings, _Worker, open_study, storage

    (tmp_path / "space.yaml").write_text(SPACE.replace("[c2 >= c1]", "[c2 > 100]"))
    search = Search(storage=f"sqlite:///{tmp_path / 'study.db'}", out=str(tmp_path / "runs"))
    settings = Settings(str(tmp_path / "space.yaml"), "small", search, Config(), stream=open(os.devnull, "w"))
    store = storage(search.url)
    study = open_study(settings, store=store)
    worker = _Worker(settings, load_space(settings.space), study, store)
    assert [worker.trial(study.ask()) for _ in range(3)] == [0, 0, 0]
    assert [t.user_attrs["rejected"] for t in study.trials] == ["constraint c2 > 100"] * 3
    assert not list((tmp_path / "runs").glob("small/trial-*"))


@pytest.mark.slow
def test_a_search_worker_decodes_its_data_once(digits, tmp_path, monkeypatch, capsys):
    """Three trials (one epoch each) and the check before them read the data once: the loads are counted."""
    import archspec.train.data as data

    loads = []
    original = data.load
    monkeypatch.setattr(data, "load", lambda *a, **k: loads.append(a[1]) or original(*a, **k))
    (tmp_path / "space.yaml").write_text(SPACE)
    assert main(search(tmp_path / "space.yaml", digits, tmp_path / "runs", f"sqlite:///{tmp_path / 's.db'}",
                       trials=3, epochs=1)) == 0
    assert len(trained(f"sqlite:///{tmp_path / 's.db'}")) == 3 and loads == ["train", "test"]


@pytest.mark.slow  # SQLite waits its 5 s for the lock before saying it is locked
def test_a_locked_study_database_is_called_locked(tmp_path, capsys):
    import sqlite3

    path = tmp_path / "study.db"
    optuna.create_study(study_name="small", storage=f"sqlite:///{path}")
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another program writing to it
    try:
        before = path.read_bytes()
        assert main(["search", "--report", "--storage", f"sqlite:///{path}", "--study", "small", "--report-out",
                     str(tmp_path / "report")]) == 1
    finally:
        holder.rollback()
        holder.close()
    err = capsys.readouterr().err
    assert f"--storage sqlite:///{path}: {path} is locked by another program that is writing to it" in err
    assert "not an SQLite database" not in err and path.read_bytes() == before and not (tmp_path / "report").exists()


@pytest.mark.slow
def test_a_search_applies_resize_once_to_the_space_not_again_to_each_trial(digits, tmp_path, monkeypatch):
    import archspec.train.config as config

    applied = []
    original = config.input_overrides
    monkeypatch.setattr(config, "input_overrides", lambda **sizes: applied.append(sizes) or original(**sizes))
    (tmp_path / "space.yaml").write_text(SPACE)
    assert main(search(tmp_path / "space.yaml", digits, tmp_path / "runs", f"sqlite:///{tmp_path / 's.db'}",
                       "--resize", "24", trials=1, epochs=1)) == 0
    assert applied == [{"height": 24, "width": 24}]
    [trial] = glob.glob(str(tmp_path / "runs" / "small" / "trial-*" / "run" / "spec.yaml"))
    assert load_spec(trial).input.shape == (1, 24, 24)


@pytest.mark.slow
def test_search_runs_a_conditional_space_asking_each_trial_for_its_branch_variables_only(digits, tmp_path, capsys):
    """The README's conditional space (an Inception block or a residual block, each with its own widths): each
    trial's parameters are the choice and the variables of the block it took, and its spec has that block."""
    space = Path(__file__).resolve().parent.parent / "specs" / "inception-or-residual-space.yaml"
    url = f"sqlite:///{tmp_path / 's.db'}"
    assert main(search(space, digits, tmp_path / "runs", url, "--search-seed", "1", "--resize", "12", "--batch-size",
                       "128", trials=4, epochs=1)) == 0  # 12x12 images, large batches: a few seconds a trial
    branch = {"0:inception": {"stages.body.0", "stages.body.0.inception.c1", "stages.body.0.inception.c2.1",
                              "stages.body.0.inception.c4"},
              "1:residual": {"stages.body.0", "stages.body.0.residual.channels"}}
    done = trained(url)
    assert len(done) == 4
    for t in trials(url):
        assert set(t.params) == branch[t.params["stages.body.0"]]
    assert {t.params["stages.body.0"] for t in done} == set(branch)  # both blocks trained
    for t in done:
        [spec] = glob.glob(str(tmp_path / "runs" / "small" / f"trial-{t.number:04d}" / "run" / "spec.yaml"))
        import yaml

        entry = yaml.safe_load(Path(spec).read_text())["stages"]["body"][0]
        assert list(entry) == [t.params["stages.body.0"].split(":")[1]]  # the block the trial took, alone


@pytest.mark.slow
def test_a_diverged_trial_is_recorded_with_its_reason_and_the_search_goes_on(digits, tmp_path, capsys):
    """A trial whose loss became NaN (here every one: sgd at lr 100 with weight decay 1) stopped the search with an
    error, or, before divergence was caught, was scored as complete at chance accuracy: now it is a trial stopped
    early (PRUNED, so it counts and the sampler learns from it) with a `diverged` reason, never the best."""
    # without the constraint no draw is rejected (a rejected draw is a PRUNED trial too: the draws are unseeded)
    (tmp_path / "space.yaml").write_text(SPACE.replace("  constraints: [c2 >= c1]\n", ""))
    storage = f"sqlite:///{tmp_path / 's.db'}"
    assert main(search(tmp_path / "space.yaml", digits, tmp_path / "runs", storage, "--optimizer", "sgd", "--lr",
                       "100", "--wd", "1", trials=2, epochs=1)) == 0
    err = capsys.readouterr().err
    done = trials(storage)
    assert [t.state.name for t in done] == ["PRUNED", "PRUNED"] and all(t.values is None for t in done)
    assert all(t.user_attrs["diverged"].startswith("the training loss became nan in epoch 1 at step ") for t in done)
    assert "trial 0: diverged: the training loss became nan in epoch 1 at step " in err
    assert not list((tmp_path / "runs").glob("small/trial-*/run/final.params"))
    assert main(["search", "--report", "--storage", storage, "--study", "small", "--report-out",
                 str(tmp_path / "report")]) == 0
    out = capsys.readouterr().out
    assert "diverged (the training loss became nan" in out and "2 trials: 2 diverged" in out
    assert not (tmp_path / "report" / "best.yaml").exists()  # no trial to call best


def _sha256(path):
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def _refused_by_search_and_report(tmp_path, digits, url, capsys):
    """The messages of `search` and of `search --report` on `url`: both refused, nothing made."""
    errors = []
    for command in (search(tmp_path / "space.yaml", digits, tmp_path / "runs", url, trials=1, epochs=1),
                    ["search", "--report", "--storage", url, "--study", "small", "--report-out",
                     str(tmp_path / "report")]):
        code = main(command)
        err = capsys.readouterr().err
        assert code == 1 and err.startswith("archspec: --storage ") and "internal error" not in err, err
        errors.append(err)
    assert not (tmp_path / "runs").exists() and not (tmp_path / "report").exists()
    return errors


def test_a_foreign_database_with_a_studies_table_is_not_taken_for_optunas(tmp_path, digits, capsys):
    """Another program's SQLite file with a table named `studies` ended in Optuna's StorageInternalError, after
    Optuna had added its own tables to the file."""
    import sqlite3

    (tmp_path / "space.yaml").write_text(SPACE)
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE studies (id INTEGER, title TEXT)")
        db.execute("INSERT INTO studies VALUES (1, 'mine')")
    db.close()
    before = _sha256(path)
    for err in _refused_by_search_and_report(tmp_path, digits, f"sqlite:///{path}", capsys):
        assert f"{path} is not an Optuna study database: a database of something else than Optuna's studies " \
               "(tables: studies); archspec leaves it alone" in err
    assert _sha256(path) == before


@pytest.mark.parametrize("revision, message", [
    ("v3.0.0.d", "is an Optuna study database of an older schema (revision v3.0.0.d, written by Optuna 3.1.0), "
                 "which Optuna {version} does not read: back it up, then `optuna storage upgrade --storage {url}`"),
    ("v9.9.9.a", "is an Optuna study database of a newer schema (revision v9.9.9.a, written by Optuna 3.1.0) than "
                 "Optuna {version} reads (up to {head}); upgrade Optuna"),
])
def test_an_optuna_database_of_another_schema_is_refused_unchanged(tmp_path, digits, capsys, revision, message):
    import sqlite3

    from archspec.train.search import optuna_schemas

    (tmp_path / "space.yaml").write_text(SPACE)
    path = tmp_path / "old.db"
    url = f"sqlite:///{path}"
    optuna.create_study(study_name="small", storage=url)
    with sqlite3.connect(path) as db:  # as an Optuna of that schema left it
        db.execute("UPDATE alembic_version SET version_num = ?", (revision,))
        db.execute("UPDATE version_info SET library_version = '3.1.0'")
    db.close()
    before = _sha256(path)
    expected = message.format(version=optuna.__version__, url=url, head=optuna_schemas()[0])
    for err in _refused_by_search_and_report(tmp_path, digits, url, capsys):
        assert f"archspec: --storage {url}: {path} {expected}" in err, err
    assert _sha256(path) == before


@pytest.mark.slow  # a study created, then a report drawn
def test_a_read_only_study_database_is_reported_but_not_searched_into(tmp_path, digits, capsys):
    """Root writes through file modes: the file is made immutable instead (chattr +i), where the system allows."""
    from archspec.train.config import Config
    from archspec.train.search import Search, Settings, open_study

    (tmp_path / "space.yaml").write_text(SPACE)
    path = tmp_path / "study.db"
    url = f"sqlite:///{path}"
    open_study(Settings(str(tmp_path / "space.yaml"), "small", Search(storage=url), Config()))
    if os.geteuid() != 0:
        path.chmod(0o444)
    elif subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not allowed here")
    try:
        before = _sha256(path)
        code = main(search(tmp_path / "space.yaml", digits, tmp_path / "runs", url, trials=1, epochs=1))
        err = capsys.readouterr().err
        assert code == 1 and f"--storage {url}: {path} cannot be written (read-only); a search records its trials " \
                              "there" in err, err
        assert not (tmp_path / "runs").exists()
        assert main(["search", "--report", "--storage", url, "--study", "small", "--report-out",
                     str(tmp_path / "report")]) == 0  # a report only reads
        assert _sha256(path) == before
    finally:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(path)])
