"""`archspec search`: a design space explored with Optuna, every trial trained as `archspec train` trains.

A worker asks the study for a trial, draws the space's values from it (TPE, or NSGA-II for accuracy and MACs
together), rejects a network that breaks a constraint or the budget before anything is built (the trial is
PRUNED with a `rejected` attribute, so the sampler learns to avoid it), and trains the rest with
`archspec.train.train`: the same data pipeline, checkpoints and run folder, one per trial
(`OUT/STUDY/trial-0007/run`). Each epoch's test accuracy is reported, so the pruner stops weak trials.

Several workers share one study through its storage (SQLite on one machine, PostgreSQL across machines). A
worker holds a lock on its trial's folder for the trial's life and beats a heartbeat into the storage; a
worker that starts finishes the trials of this machine whose worker died (from their last checkpoint), and
Optuna marks FAILED the trials whose heartbeat stopped elsewhere, so a killed search resumes with no trial lost
and none run twice. The study ends when it holds `trials` trained trials (complete, or stopped by the pruner).
"""
from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Optional, Sequence, TextIO

from pydantic import BaseModel, ConfigDict, Field

from ..files import write_atomically
from ..spec import with_overrides
from ..spec.diagnostics import InputError
from ..spec.space import (ATTEMPTS_PER_NETWORK, SampledNetwork, Rejections, Space, Variable, load_space, sample,
                          spec_text)
from .config import Config
from .folder import LOCK, RunFolder

HEARTBEAT = 20  # seconds between a running trial's heartbeats
CONNECT_TIMEOUT = 10  # seconds to wait for a database server to answer
GRACE = 120  # a trial silent this long is FAILED by the next worker that looks
MAX_TRIALS = 100_000  # a study that long is a typo (10^23 was accepted, and would never end)
OBJECTIVES: dict[str, Any] = {"accuracy": "maximize", "macs": "minimize", "params": "minimize"}
SEARCH_OPTIONS = ("trials", "storage", "jobs", "objectives", "pruner_startup", "search_seed", "out")


class Search(BaseModel):
    """A search's own settings, as the command line gives them (each trial trains with a `Config`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    trials: int = Field(20, ge=1, le=MAX_TRIALS, description="trained trials (complete, or stopped by the pruner) "
                                                             "the study should hold (at most 100,000)")
    storage: Optional[str] = Field(None, description="Optuna storage: sqlite:///FILE (default OUT/studies.db), or "
                                                     "postgresql://USER:PASSWORD@HOST:PORT/DB, which machines share")
    jobs: int = Field(1, ge=1, le=256, description="worker processes on this machine")
    objectives: Literal["accuracy", "accuracy,macs", "accuracy,params"] = Field(
        "accuracy", description="accuracy: TPE and the median pruner; two objectives: NSGA-II, not pruned")
    pruner_startup: int = Field(3, ge=0, le=MAX_TRIALS, description="trials trained in full before the pruner stops any")
    search_seed: Optional[int] = Field(None, ge=0, lt=2**22, description="the sampler's seed (each worker adds its "
                                                                        "index); default: random")
    out: str = Field(os.path.join("runs", "search"), description="trial folders go to OUT/STUDY/trial-NNNN")

    @property
    def url(self) -> str:
        return self.storage or f"sqlite:///{Path(self.out) / 'studies.db'}"


@dataclass(frozen=True)
class Settings:
    """A search: which space, which study, how it searches (`Search`) and how each trial trains (`Config`)."""

    space: str
    study: str
    search: Search
    config: Config
    overrides: Sequence[str] = ()
    base_outside: bool = False
    stream: Optional[TextIO] = None  # where a line per trial goes (default: standard error)

    @property
    def log(self) -> TextIO:
        return self.stream or sys.stderr

    @property
    def objectives(self) -> tuple[str, ...]:
        return tuple(self.search.objectives.split(","))


def engine_kwargs(url: str) -> dict[str, Any]:
    """SQLAlchemy's engine settings for `url`: SQLite waits for a lock a minute; a server that accepts a
    connection but never answers is given up after `CONNECT_TIMEOUT` seconds."""
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": 60}}
    return {"pool_pre_ping": True, "connect_args": {"connect_timeout": CONNECT_TIMEOUT}}


def check_sqlite(url: str, create: bool = False, optuna_only: bool = False) -> None:
    """Refuse an SQLite storage that would lose the study (in memory), sits in a folder that is not there (only
    `create`, the default storage inside --out, makes it), or is a file that is not a database of Optuna's:
    its tables are never added to another program's database (`optuna_only`: nor to an empty one)."""
    import sqlite3

    path = url.removeprefix("sqlite:///")
    if not url.startswith("sqlite:///") or path in ("", ":memory:") or path.startswith("file:"):
        raise InputError(f"--storage {url}: a study in memory is lost when the search ends; name a file, "
                         "sqlite:///FILE")
    folder = Path(path).parent
    if create:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise InputError(f"--storage {url}: cannot create the folder {folder} ({e.strerror or e})") from None
    if not folder.is_dir():
        raise InputError(f"--storage {url}: no folder {folder} (archspec creates no folder for --storage; create "
                         "it, or leave --storage out for OUT/studies.db)")
    if not os.path.lexists(path):
        if optuna_only:
            raise InputError(f"--storage {url}: no study database at {path}")
        return
    if not os.path.isfile(path):
        raise InputError(f"--storage {url}: {path} is not a file")
    if not optuna_only and not (os.access(path, os.W_OK) and os.access(folder, os.W_OK | os.X_OK)):
        # a search records its trials there: Optuna's first commit would fail with an "internal error"
        where = path if not os.access(path, os.W_OK) else f"its folder {folder} (SQLite writes a journal beside it)"
        raise InputError(f"--storage {url}: {where} cannot be written (read-only); a search records its trials "
                         "there: make it writable, or name another --storage (--report only reads it)")
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            found = _optuna_tables(db, tables)
        finally:
            db.close()
    except sqlite3.OperationalError as e:
        if "locked" not in str(e):
            raise InputError(f"--storage {url}: {path} cannot be read as an SQLite database ({e})") from None
        raise InputError(f"--storage {url}: {path} is locked by another program that is writing to it (SQLite: "
                         f"{e}); run again when it is done") from None
    except sqlite3.Error as e:
        raise InputError(f"--storage {url}: {path} is not an SQLite database ({e})") from None
    if found is None and (tables or optuna_only):
        raise InputError(f"--storage {url}: {path} is not an Optuna study database: a database of something else "
                         f"than Optuna's studies (tables: {', '.join(sorted(tables)) or 'none'}); archspec leaves it "
                         "alone")
    if found is not None:
        _same_schema(url, path, *found)


def _optuna_tables(db: Any, tables: set[str]) -> Optional[tuple[Optional[str], str]]:
    """The schema revision (None before Optuna used Alembic) and the Optuna version that wrote the SQLite database
    `db`, read without writing; None when its tables are not Optuna's. A table named `studies` is not enough: a
    foreign one made Optuna add its own tables to the file, then fail."""
    if not {"studies", "version_info"} <= tables:
        return None
    columns = {row[1] for row in db.execute("PRAGMA table_info(studies)")}
    info = db.execute("SELECT library_version FROM version_info").fetchall() if "version_info" in tables else []
    if not {"study_id", "study_name"} <= columns or len(info) != 1:
        return None
    revision = db.execute("SELECT version_num FROM alembic_version").fetchall() if "alembic_version" in tables else []
    return (str(revision[0][0]) if len(revision) == 1 else None), str(info[0][0])


def _same_schema(url: str, path: str, revision: Optional[str], written_by: str) -> None:
    """Refuse an Optuna database of another schema before Optuna opens it (which writes, and then fails)."""
    import optuna

    head, known = optuna_schemas()
    if revision == head:
        return
    if revision is None or revision in known:
        raise InputError(f"--storage {url}: {path} is an Optuna study database of an older schema (revision "
                         f"{revision or 'before v0.9.0.a'}, written by Optuna {written_by}), which Optuna "
                         f"{optuna.__version__} does not read: back it up, then `optuna storage upgrade --storage "
                         f"{url}`, or use the Optuna that wrote it")
    raise InputError(f"--storage {url}: {path} is an Optuna study database of a newer schema (revision {revision}, "
                     f"written by Optuna {written_by}) than Optuna {optuna.__version__} reads (up to {head}); "
                     "upgrade Optuna (pip install -U optuna)")


def optuna_schemas() -> tuple[str, list[str]]:
    """This Optuna's schema revision, and every one it knows (older ones it can upgrade). Read from its Alembic
    scripts (`optuna/storages/_rdb/alembic`, Optuna 5.1), as `RDBStorage.get_head_version` does, but without
    opening a storage, which would write to the file."""
    from alembic.script import ScriptDirectory
    from optuna.storages._rdb import storage as rdb

    scripts = ScriptDirectory(os.path.join(os.path.dirname(rdb.__file__), "alembic"))
    return str(scripts.get_current_head()), [str(r.revision) for r in scripts.walk_revisions()]


def storage(url: str, create: bool = False, optuna_only: bool = False) -> Any:
    """Optuna's database storage at `url` (sqlite:///FILE, postgresql://USER:PASSWORD@HOST:PORT/DB), with
    heartbeats so that a dead worker's trial is noticed. `create`: the folder of an SQLite file may be made (the
    default storage, inside --out); `optuna_only`: the storage must already hold Optuna's tables (a report)."""
    import optuna
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    kwargs = engine_kwargs(url)
    given = url
    if url.startswith("postgresql://"):  # psycopg 3 (the search extra), whatever SQLAlchemy's default driver is
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    if url.startswith("sqlite"):
        check_sqlite(url, create, optuna_only)
    # Heartbeats are "experimental" since Optuna 2.9, and "meant for Study.optimize": archspec beats them itself
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", "Heartbeat of storage is supposed to be used with Study.optimize")
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs=kwargs, heartbeat_interval=HEARTBEAT,
                                          grace_period=GRACE)
    except (ArgumentError, SQLAlchemyError, ImportError, ValueError) as e:  # a server out of reach, a corrupt file
        raise InputError(f"--storage {_without_password(given)}: cannot open it ({str(e).splitlines()[0][:200]})") \
            from None


def _without_password(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    user, at, host = rest.rpartition("@")
    return f"{scheme}{sep}{user.split(':')[0]}:***@{host}" if at and ":" in user else url


def variables(space: Space) -> dict[str, Any]:
    """A space's variables as a study remembers them: each path's name and distribution (a choice by the labels
    Optuna sees), as JSON gives them back."""
    described = {v.key: {"name": v.name, **v.distribution.model_dump(by_alias=True, exclude={"name", "choice"}),
                         **({"choice": v.labels} if v.options else {}), **_inside(space, v)} for v in space.variables}
    return dict(json.loads(json.dumps(described)))


def _inside(space: Space, v: Variable) -> dict[str, Any]:
    """For a variable that lives inside a choice: the choice and the values of it under which it is drawn."""
    if v.parent is None:
        return {}
    choice = next(c for c in space.variables if c.key == v.parent)
    return {"inside": v.parent, "when": [choice.labels[i] for i in sorted(v.branches)]}


def open_study(settings: Settings, worker: int = 0, store: Any = None, space: Optional[Space] = None) -> Any:
    """The study, created on first use; TPE for one objective, NSGA-II for two. The median pruner stops a trial
    whose accuracy after an epoch is below the median of earlier trials' at that epoch. A study searched with
    other objectives or another space (other variables or distributions) is refused before anything is written."""
    import optuna

    space = space or load_space(settings.space, with_overrides(settings.overrides, settings.config.input_overrides()),
                                base_outside=settings.base_outside)
    described = variables(space)
    store = store or storage(settings.search.url, create=settings.search.storage is None)
    if settings.study in optuna.get_all_study_names(store):  # checked before create_study writes anything
        _same_search(settings, optuna.load_study(study_name=settings.study, storage=store), described)

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    seed = None if settings.search.search_seed is None else settings.search.search_seed * 1000 + worker  # workers draw different networks
    single = len(settings.objectives) == 1
    sampler = optuna.samplers.TPESampler(seed=seed) if single else optuna.samplers.NSGAIISampler(seed=seed)
    pruner = optuna.pruners.MedianPruner(n_startup_trials=settings.search.pruner_startup) if single else \
        optuna.pruners.NopPruner()
    try:
        study = optuna.create_study(storage=store, study_name=settings.study,
                                    sampler=sampler,
                                    pruner=pruner, load_if_exists=True,
                                    directions=[OBJECTIVES[o] for o in settings.objectives])
    except ValueError as e:  # an existing study with other directions
        raise InputError(f"study {settings.study!r}: {e}") from None
    _same_search(settings, study, described)  # again: another worker may have created it meanwhile
    study.set_user_attr("objectives", list(settings.objectives))
    study.set_user_attr("space", settings.space)
    study.set_user_attr("variables", described)
    return study


def _same_search(settings: Settings, study: Any, described: dict[str, Any]) -> None:
    """Refuse to go on with a study that optimises other objectives or searched another space."""
    if study.user_attrs.get("objectives", list(settings.objectives)) != list(settings.objectives):
        raise InputError(f"study {settings.study!r} optimises {', '.join(study.user_attrs['objectives'])}, not "
                         f"{', '.join(settings.objectives)}; choose another --study")
    before = study.user_attrs.get("variables", described)
    if before != described:
        changed = sorted(set(before) ^ set(described)) or [k for k in described if before[k] != described[k]]
        key = changed[0]
        then = json.dumps(before[key]) if key in before else "not varied"
        now = json.dumps(described[key]) if key in described else "not varied"
        raise InputError(f"study {settings.study!r} searched another space ({key}: {then} then, {now} now); "
                         "choose another --study for the changed space")


class OptunaDraw:
    """A space's values as an Optuna trial suggests them (the same trial suggests the same values again)."""

    def __init__(self, trial: Any):
        self.trial = trial

    def integer(self, name: str, low: int, high: int, step: int, log: bool) -> int:
        return int(self.trial.suggest_int(name, low, high, step=step, log=log))

    def real(self, name: str, low: float, high: float, log: bool) -> float:
        return float(self.trial.suggest_float(name, low, high, log=log))

    def choice(self, name: str, labels: Sequence[Any]) -> int:
        chosen = self.trial.suggest_categorical(name, list(labels))
        return next(i for i, label in enumerate(labels) if type(label) is type(chosen) and label == chosen)


class _Heartbeat:
    """Tells the storage every `HEARTBEAT` seconds that a trial's worker is alive."""

    def __init__(self, storage: Any, trial_id: int):
        self.storage, self.trial_id, self.stop = storage, trial_id, threading.Event()
        storage.record_heartbeat(trial_id)
        self.thread = threading.Thread(target=self._beat, daemon=True)
        self.thread.start()

    def _beat(self) -> None:
        while not self.stop.wait(HEARTBEAT):
            try:
                self.storage.record_heartbeat(self.trial_id)
            except Exception:  # a database hiccup: the next beat tries again; a long silence fails the trial
                pass

    def end(self) -> None:
        self.stop.set()
        self.thread.join()


def counted(study: Any) -> int:
    """Trials that count towards `--trials`: trained to the end, stopped by the pruner, or training now."""
    from optuna.trial import TrialState

    return sum(1 for t in study.get_trials(deepcopy=False)
               if "rejected" not in t.user_attrs and (t.state in (TrialState.COMPLETE, TrialState.PRUNED)
                                                       or (t.state == TrialState.RUNNING and "network" in t.user_attrs)))


def run(settings: Settings, worker: int = 0) -> int:
    """One worker: finish this machine's interrupted trials, then run trials until the study holds enough.
    Returns the number of trials this worker trained. Its trials train on data decoded once."""
    from .stream import loaded_data_kept

    with loaded_data_kept():
        return _run(settings, worker)


def _run(settings: Settings, worker: int) -> int:
    import optuna

    from .loop import load_data

    space = load_space(settings.space, with_overrides(settings.overrides, settings.config.input_overrides()),
                       base_outside=settings.base_outside)
    network = sample(space, 1, seed=settings.search.search_seed).networks[0]  # a space with no network fails here, located
    if settings.search.storage is not None and settings.search.url.startswith("sqlite"):
        check_sqlite(settings.search.url)  # a storage that cannot be used is said before the data is read
    load_data(network.spec, settings.config)  # and data the networks cannot take, before anything is written
    store = storage(settings.search.url, create=settings.search.storage is None)
    study = open_study(settings, worker, store, space)
    search = _Worker(settings, space, study, store)
    done = search.finish_interrupted()
    rejected_in_a_row = 0
    while True:
        optuna.storages.fail_stale_trials(study)  # trials whose worker fell silent, on any machine: FAILED
        if counted(study) >= settings.search.trials:
            return done
        if rejected_in_a_row >= ATTEMPTS_PER_NETWORK * settings.search.trials:
            raise InputError(f"{settings.space}: {rejected_in_a_row} trials in a row were rejected by the space's "
                             "constraints or budget; the sampler finds nothing to train")
        trial = study.ask()
        trained = search.trial(trial)
        rejected_in_a_row = 0 if trained else rejected_in_a_row + 1
        done += trained


@dataclass
class _Worker:
    """One worker of a search: the settings, the space it samples, the Optuna study and its storage. It holds no
    state of its own between trials: what a trial has done lives in its folder and in the storage."""

    settings: Settings
    space: Space
    study: Any
    store: Any

    def folder(self, number: int) -> Path:
        return Path(self.settings.search.out) / self.settings.study / f"trial-{number:04d}"

    def finish_interrupted(self) -> int:
        """The RUNNING trials of this machine whose worker died: each is finished from its last checkpoint by
        whichever worker takes its folder's lock first."""
        import optuna
        from optuna.trial import TrialState

        finished = 0
        for frozen in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            attrs = frozen.user_attrs
            if attrs.get("host") != socket.gethostname() or "folder" not in attrs:
                continue
            folder = Path(attrs["folder"])
            try:
                lock = RunFolder(folder, self._command())
            except InputError:
                continue  # alive: its worker holds the folder
            if self.store.get_trial(trial_id(frozen)).state != TrialState.RUNNING:
                lock.release()  # it ended between the look and the lock (a worker lets go once the study knows)
                continue
            print(f"trial {frozen.number}: its worker (PID {attrs.get('pid')}) died; finishing it",
                  file=self.settings.log)
            finished += self.trial(optuna.trial.Trial(self.study, trial_id(frozen)), folder, lock)
        return finished

    def trial(self, trial: Any, folder: Optional[Path] = None, lock: Optional[RunFolder] = None) -> int:
        """Draw, check and train one trial (a new one, or one whose worker died: in its `folder`, already
        `lock`ed); 1 if it trained (to the end or until pruned), 0 if rejected."""
        from .loop import TrainingInterrupted

        resume = folder is not None
        folder = folder or self.folder(trial.number)
        lock = lock or RunFolder(folder, self._command())  # held until the study knows how the trial ended
        heartbeat: Optional[_Heartbeat] = None
        rejected = False
        try:
            heartbeat = _Heartbeat(self.store, trial_id(trial))  # in the try: a failing store still frees the lock
            trial.set_user_attr("host", socket.gethostname())
            trial.set_user_attr("pid", os.getpid())
            trial.set_user_attr("folder", str(folder.resolve()))
            values = self.space.draw(OptunaDraw(trial))
            trial.set_user_attr("values", self.space.shown(values))
            rejections = Rejections()
            network = self.space.consider(values, rejections)
            if network is None:
                reason = next(iter(rejections.counts))
                trial.set_user_attr("rejected", reason)
                self.study.tell(trial, state=_state("PRUNED"))
                print(f"trial {trial.number}: rejected ({reason}): {self.space.described(values)}",
                      file=self.settings.log)
                rejected = True
                return 0
            self._train(trial, network, folder, resume)
            return 1
        except (KeyboardInterrupt, TrainingInterrupted):
            raise  # the trial stays RUNNING: the next worker on this machine finishes it
        except BaseException:
            self.study.tell(trial, state=_state("FAIL"), skip_if_finished=True)
            raise
        finally:
            if heartbeat is not None:
                heartbeat.end()
            lock.release()
            if rejected:  # told: no worker takes its folder again, which held only the lock
                _remove_empty(folder)

    def _train(self, trial: Any, network: SampledNetwork, folder: Path, resume: bool) -> None:
        import optuna

        from .loop import TrainingDiverged, train

        spec = folder / "spec.yaml"
        name = f"{self.space.tree.get('name', 'network')}-{trial.number:04d}"
        text = spec_text(network, name, f"trial {trial.number} of study {self.settings.study}: "
                                        f"{self.space.described(network.values)}")
        if not spec.is_file():  # a worker killed mid-write leaves no truncated spec for its successor
            write_atomically(spec, text.encode())
        trial.set_user_attr("network", {"params": network.params, "macs": network.summary.macs,
                                        "memory": network.summary.memory})
        trial.set_user_attr("spec", text)
        single = len(self.settings.objectives) == 1
        started = time.perf_counter()

        def report(history: list[dict[str, Any]]) -> None:
            if not single:
                return  # Optuna prunes single-objective studies only
            with warnings.catch_warnings():  # a resumed trial reports its earlier epochs again: ignored
                warnings.simplefilter("ignore")
                for row in history:
                    trial.report(row["test_acc"], row["epoch"])
            if len(history) < self.settings.config.epochs and trial.should_prune():  # a trained one is complete
                raise optuna.TrialPruned()

        history = _finished_history(folder, self.settings.config.epochs)
        with open(folder / "train.log", "a") as log:
            try:
                if history is None:
                    history, _ = train(spec, folder / "run", self.settings.config, resume=resume, stream=log,
                                       command=["archspec", "search", "trial", str(trial.number)], on_epoch=report,
                                       sized=True)  # sampled from the space with --resize applied
                report(history)
            except (optuna.TrialPruned, TrainingDiverged) as stopped:
                trial.set_user_attr("seconds", round(time.perf_counter() - started, 3))
                why = f"pruned after epoch {len(trial_history(folder))}"
                if isinstance(stopped, TrainingDiverged):  # a result of the settings, not a failure: it counts,
                    trial.set_user_attr("diverged", stopped.reason)  # and no accuracy is scored for it
                    print(str(stopped), file=log)
                    why = f"diverged: {stopped.reason}"
                self.study.tell(trial, state=_state("PRUNED"))
                print(f"trial {trial.number}: {why} ({self.space.described(network.values)})", file=self.settings.log)
                return
        accuracy = history[-1]["test_acc"]
        trial.set_user_attr("seconds", round(sum(h["seconds"] for h in history), 3))
        measures = {"accuracy": accuracy, "macs": network.summary.macs, "params": network.params}
        values = [measures[o] for o in self.settings.objectives]
        self.study.tell(trial, values)
        print(f"trial {trial.number}: test accuracy {accuracy:.4f}, {network.params:,} parameters, "
              f"{network.summary.macs / 1e6:,.1f} M MACs ({self.space.described(network.values)})",
              file=self.settings.log)

    def _command(self) -> str:
        return " ".join(["archspec", *sys.argv[1:]])


def _remove_empty(folder: Path) -> None:
    """A rejected trial's folder, which holds nothing but its lock file."""
    try:
        if {p.name for p in folder.iterdir()} <= {LOCK}:
            (folder / LOCK).unlink(missing_ok=True)
            folder.rmdir()
    except OSError:
        pass  # a folder left behind is harmless


def trial_history(folder: Path) -> list[dict[str, Any]]:
    """The per-epoch metrics a trial's run wrote so far."""
    try:
        history = json.loads((folder / "run" / "metrics.json").read_text())
    except (OSError, ValueError):
        return []
    return history if isinstance(history, list) else []


def _finished_history(folder: Path, epochs: int) -> Optional[list[dict[str, Any]]]:
    """The metrics of a trial whose run trained all its epochs (killed before the study heard of it), else None."""
    history = trial_history(folder)
    return history if (folder / "run" / "final.params").is_file() and len(history) >= epochs else None


def trial_id(trial: Any) -> int:
    """The storage's id of a trial (not its number), which heartbeats and `Trial(study, id)` take. The one
    private attribute of Optuna archspec reads (`_trial_id` of `Trial` and `FrozenTrial`, Optuna 5.0)."""
    return int(trial._trial_id)


def _state(name: str) -> Any:
    from optuna.trial import TrialState

    return TrialState[name]


def spawn(argv: Sequence[str], jobs: int) -> int:
    """`--jobs J`: J worker processes on this machine, each `archspec search ... --jobs 1 --worker K` on the same
    storage, sharing the cores (OMP_NUM_THREADS split between them unless set, threads that yield:
    `processes.worker_environment`). Returns the worst exit code."""
    import subprocess

    from .processes import worker_environment

    rest, skip = [], False
    for arg in argv:  # the command line less its --jobs
        if skip or arg.startswith("--jobs="):
            skip = False
            continue
        if arg == "--jobs":
            skip = True
            continue
        rest.append(arg)
    env = worker_environment(max(1, len(os.sched_getaffinity(0)) // jobs))
    workers = [subprocess.Popen([sys.executable, "-m", "archspec", *rest, "--jobs", "1", "--worker", str(k)],
                                env=env) for k in range(jobs)]
    try:
        return max(w.wait() for w in workers)
    except KeyboardInterrupt:  # the workers had it too (one process group): wait for them to stop
        return max(w.wait() for w in workers) or 130
