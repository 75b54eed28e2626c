"""Checkpoints: NAME.params + NAME.states, then NAME.json (written last, with both files' hashes) marks the
checkpoint complete. A crash at any moment leaves complete checkpoints and ignorable leftovers."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Optional

from .failpoints import reached
from ..files import save_atomically, sha256, write_atomically
from ..gluon.build import load_parameters
from ..gluon.compat import params_by_path, updates_on_servers
from ..gluon.modules import Network
from ..spec.diagnostics import InputError


def _fingerprint(net: Network) -> dict[str, Any]:
    return {"spec": net.spec.name, "input": list(net.spec.input.shape),
            "params": {name: list(p.shape) for name, p in params_by_path(net).items()}}


def save_checkpoint(folder: Path, net: Network, trainer: Any, state: dict[str, Any], keep: int) -> Path:
    """Write checkpoint `step-NNNNNNNN` of `state` (a JSON-able dict with `step`); keep the last `keep`."""
    folder.mkdir(parents=True, exist_ok=True)
    name = f"step-{state['step']:08d}"
    savers: dict[str, Callable[[str], None]] = {".params": net.save_parameters}
    if not updates_on_servers(trainer):  # else the servers hold the optimizer state
        savers[".states"] = trainer.save_states
    for suffix, save in savers.items():
        save_atomically(folder / f"{name}{suffix}", save)
    meta = {**state, "fingerprint": _fingerprint(net),
            "sha256": {s: sha256(folder / f"{name}{s}") for s in savers}}
    write_atomically(folder / f"{name}.json", json.dumps(meta, indent=1).encode())
    for old in sorted(folder.glob("step-*.json"))[:-keep]:  # the marker first: never a half-deleted "complete" one
        old.unlink()
        for suffix in (".params", ".states"):
            old.with_suffix(suffix).unlink(missing_ok=True)
    reached("checkpoint", state["step"])  # where the tests' SIGKILL and Ctrl-C land: no time window to hit
    return folder / f"{name}.json"


def latest_checkpoint(folder: Path) -> Optional[dict[str, Any]]:
    """The record of the newest complete checkpoint in `folder` (its files checked), or None."""
    markers = sorted(folder.glob("step-*.json"))
    if not markers:
        return None
    meta_path = markers[-1]
    try:
        meta = json.loads(meta_path.read_text())
        if not (isinstance(meta, dict) and all(type(meta.get(k)) is int for k in ("epoch", "step_in_epoch", "step"))
                and isinstance(meta.get("tally"), dict) and isinstance(meta.get("history"), list)
                and isinstance(meta.get("sha256"), dict)):
            raise ValueError
    except (OSError, ValueError):
        raise InputError(f"{meta_path}: corrupt checkpoint record; delete it to resume from the one before") from None
    for suffix, digest in meta.get("sha256", {}).items():
        path = meta_path.with_suffix(suffix)
        if not path.is_file() or sha256(path) != digest:
            raise InputError(f"{path}: missing or corrupt (its checksum does not match {meta_path.name}); delete "
                             f"{meta_path.name} to resume from the checkpoint before it")
    meta["path"] = str(meta_path.with_suffix(""))
    return meta


def restore(meta: dict[str, Any], net: Network, trainer: Any) -> None:
    """Load a checkpoint into `net` and `trainer`; refuses one made for another network."""
    theirs, ours = meta.get("fingerprint", {}), _fingerprint(net)
    if theirs != ours:
        what = ("another spec" if theirs.get("spec") != ours["spec"] else "the same spec with different shapes")
        diff = [n for n in set(theirs.get("params", {})) | set(ours["params"])
                if theirs.get("params", {}).get(n) != ours["params"].get(n)]
        raise InputError(f"{meta['path']}: this checkpoint is for {what} ({theirs.get('spec')!r}, "
                         f"{len(diff)} parameter(s) differ, e.g. {sorted(diff)[:3]}); start a new run folder")
    load_parameters(net, meta["path"] + ".params")
    if ".states" in meta["sha256"]:
        trainer.load_states(meta["path"] + ".states")
