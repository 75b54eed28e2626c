"""One run per folder: a run folder is locked for the run's life, and a resumed run must be the run the folder
holds (the same network, data and settings). Nothing is written until the checks pass."""
from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path
from typing import Any, Optional, TextIO

from ..files import folders_to_make, remove_leftovers, write_atomically
from ..spec.diagnostics import InputError
from .config import Config

LOCK = ".lock"
RECORD = "config.json"
CLASSES_FILE = "classes.json"  # the names of the network's outputs, when the data had them (archspec predict)


def check_new(out: Path, resume: bool) -> None:
    """Before anything is read or written: `--out` must be a folder, and a new run's folder empty."""
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: not a folder; --out names the run folder")
    folders_to_make(out, "--out")  # a folder that cannot be made (under /proc, a file, no permission): said now
    holder = _holder(out)
    if holder:
        raise InputError(f"{out}: another run is using this folder ({holder}); wait for it to end, or choose "
                         "another --out")
    if not resume:
        _refuse_if_not_empty(out)


def _refuse_if_not_empty(out: Path) -> None:
    if _contents(out):
        raise InputError(f"{out}: the run folder is not empty; pass --resume to continue it, or choose another --out")


def _holder(out: Path) -> Optional[str]:
    """Who holds the folder's lock (`PID 123: archspec train ...`), or None when no live process does."""
    if not (out / LOCK).is_file():
        return None
    with open(out / LOCK) as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
            return None  # nobody holds it; closing the file lets it go again
        except BlockingIOError:
            for _ in range(20):  # the holder writes who it is just after it locks
                holder = f.read().strip()
                if holder:
                    return holder
                time.sleep(0.05)
                f.seek(0)
            return "another process"


def _contents(out: Path) -> list[str]:
    """What the folder holds, less the lock and the temporary files a killed run left."""
    if not out.is_dir():
        return []
    return [p.name for p in out.iterdir() if p.name != LOCK and not p.name.startswith(".archspec-")]


class RunFolder:
    """A run folder, locked by this process until it exits (the system drops the lock of a dead process)."""

    def __init__(self, out: Path, command: str):
        self.out = out
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as e:  # what `check_new` cannot foresee: /proc lets root "write" and makes nothing
            raise InputError(f"--out {out}: cannot create the run folder ({e.strerror or e})") from None
        self._lock: Optional[TextIO] = open(out / LOCK, "a+")
        for attempt in range(10):  # another process's `_holder` may be looking at the lock for a moment
            try:
                fcntl.flock(self._lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                time.sleep(0.05)
        else:
            self._lock.close()
            holder = _holder(out) or "another process"
            raise InputError(f"{out}: another run is using this folder ({holder}); wait for it to end, or choose "
                             "another --out")
        self._lock.seek(0)
        self._lock.truncate()
        self._lock.write(f"PID {os.getpid()}: {command}\n")
        self._lock.flush()
        remove_leftovers(out)
        remove_leftovers(out / "checkpoints")

    def check(self, config: Config, identity: dict[str, Any], resume: bool, done: Optional[int], force: bool) -> None:
        """A new run needs an empty folder (checked again, now that no other run can write to it); a resumed one
        the data and settings it was started with (`identity` less the network, which `same_network` checks once
        the checkpoint's parameter shapes have been), and a run still to finish (or `force`).
        `done` is the epochs the last checkpoint completed (None: no checkpoint)."""
        if not resume:
            _refuse_if_not_empty(self.out)  # again: another run may have written here before this one got the lock
            return
        saved = self._saved()
        if saved is None:
            return  # nothing was recorded yet: the run died before its first step
        # a setting added since the run was recorded reads as its default
        before, before_identity = dict(saved["config"]), dict(saved.get("identity", {}))
        defaults = Config().model_dump(mode="json")
        differ = [f"{k}: {(before.get(k), v)}" for k, v in config.model_dump(mode="json").items()
                  if k not in Config.MAY_CHANGE and before.get(k, defaults[k]) != v]
        differ += [f"{k}.{_difference(before_identity.get(k), v)}" for k, v in identity.items()
                   if k != "network" and before_identity.get(k) != _recorded(before_identity.get(k), v)]
        if differ:
            raise InputError(f"{self.out}: --resume continues a run with the same settings and data; these differ "
                             "(saved, now): " + "; ".join(differ))
        finished = (self.out / "final.params").is_file() and (done is None or done >= config.epochs)
        if finished and not force:
            what = f"it finished {done} epoch(s)" if done is not None else "it has final.params but no checkpoint"
            raise InputError(f"{self.out}: {what}; pass --epochs with more to extend it, or --force to train it "
                             "again over its results")

    def same_network(self, network: dict[str, Any]) -> None:
        """A resumed run's network must be the one it was started with: kinds, activations, every field."""
        saved = self._saved()
        before = (saved or {}).get("identity", {}).get("network")
        if before is not None and before != network:
            raise InputError(f"{self.out}: --resume continues a run of the same network; it differs (saved -> now): "
                             f"{_difference(before, network)}; start a new run folder")

    def _saved(self) -> Optional[dict[str, Any]]:
        record = self.out / RECORD
        if not record.is_file():
            return None
        try:
            saved = json.loads(record.read_text())
            dict(saved["config"])
            return dict(saved)
        except (OSError, ValueError, KeyError, TypeError):
            raise InputError(f"{record}: corrupt run record; start a new run folder") from None

    def record(self, config: Config, identity: dict[str, Any]) -> None:
        write_atomically(self.out / RECORD, json.dumps({"spec": identity["network"]["name"],
                                                        "config": config.model_dump(mode="json"),
                                                        "identity": identity},
                                                       indent=1).encode())

    def release(self) -> None:
        if self._lock is not None:
            self._lock.close()  # closing drops the lock
            self._lock = None


def _recorded(before: Any, now: Any) -> Any:
    """`now` as a record written before it had all its keys would hold it: a key added to the record since (the
    data's class names) reads as unchanged, so runs recorded by an earlier archspec still resume."""
    if isinstance(before, dict) and isinstance(now, dict):
        return {k: _recorded(before[k], v) for k, v in now.items() if k in before}
    return now


def _difference(before: Any, now: Any) -> str:
    """The first fields in which two records differ, for a message (`stages.b3.0.activation: "relu" -> null`)."""
    return ", ".join(f"{'.'.join(map(str, path))}: {_short(a)} -> {_short(b)}" if path else f"{_short(a)} -> {_short(b)}"
                     for path, a, b in _differences(before, now)[:3])


def _differences(before: Any, now: Any, path: tuple[Any, ...] = ()) -> list[tuple[tuple[Any, ...], Any, Any]]:
    if isinstance(before, dict) and isinstance(now, dict):
        return [d for k in {**before, **now} if before.get(k) != now.get(k)
                for d in _differences(before.get(k), now.get(k), path + (k,))]
    if isinstance(before, list) and isinstance(now, list) and len(before) == len(now):
        return [d for i, (a, b) in enumerate(zip(before, now)) if a != b for d in _differences(a, b, path + (i,))]
    return [(path, before, now)]


def _short(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def network_identity(spec: Any) -> dict[str, Any]:
    """The network a spec describes, as data: every layer's kind and fields, in order (a changed activation or pool
    kind shows, not only a changed parameter shape)."""
    def layers(seq: Any) -> list[Any]:
        return [{"kind": layer.kind, **layer.model_dump(mode="json", exclude=set(layer.children)),
                 **{name or "layers": layers(inner) for name, inner in layer.sequences()}} for layer in seq]

    return {"name": spec.name, "input": list(spec.input.shape), "init": spec.init,
            "stages": {name: layers(seq) for name, seq in spec.stages.items()},
            "aux": {name: {"after": head.after, "weight": head.weight, "layers": layers(head.layers)}
                    for name, head in spec.aux.items()}}
