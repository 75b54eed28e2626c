"""Training and evaluation with Gluon's own pieces: the built network hybridized, `gluon.Trainer`,
softmax cross-entropy (plus the auxiliary heads' weighted losses), MXNet's kvstore for several
devices or machines. A run folder holds everything a run produces; checkpoints make it resumable.

Determinism: the data order of epoch e is a permutation seeded by (seed, e), and MXNet's generator is
reseeded from (seed, step) before every step, so a run resumed from a checkpoint repeats exactly what
an uninterrupted run does.
"""
from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar

import numpy as onp

from . import data as datasets
from .errors import InputError
from .files import save_atomically, write_atomically

METRICS = ("epoch", "train_loss", "train_acc", "test_loss", "test_acc", "images_per_s", "seconds")


@dataclass(frozen=True)
class Config:
    """What a run is: resuming refuses a different one."""

    epochs: int = 10
    batch_size: int = 128
    lr: float = 0.1
    optimizer: str = "sgd"  # sgd | nag | adam
    momentum: float = 0.0
    weight_decay: float = 0.0
    resize: int | None = None  # sets the spec's input size; images are always resized to the spec's input
    seed: int = 0
    data: str = "fashion-mnist"
    data_dir: str | None = None
    checkpoint_every: int = 0  # steps; 0: at the end of every epoch only
    keep: int = 3  # checkpoints kept

    MAY_CHANGE: ClassVar[set] = {"epochs", "checkpoint_every", "keep", "data_dir"}  # on --resume

    def optimizer_params(self) -> dict:
        params = {"learning_rate": self.lr, "wd": self.weight_decay}
        if self.optimizer in ("sgd", "nag") and (self.momentum or self.optimizer == "nag"):
            params["momentum"] = self.momentum or 0.9
        return params


class TrainingInterrupted(Exception):
    """Ctrl-C: the message says where the run stopped and how to resume it."""


@dataclass
class _Tally:
    loss: float = 0.0
    correct: int = 0
    count: int = 0
    seconds: float = 0.0

    def add(self, loss: float, correct: int, count: int) -> None:
        self.loss, self.correct, self.count = self.loss + loss, self.correct + correct, self.count + count


def parse_contexts(text: str | None):
    """`cpu`, `gpu:0,1`, `gpu:0,gpu:1` -> a list of MXNet contexts."""
    import mxnet as mx

    if not text or text == "cpu":
        return [mx.cpu()]
    kind, _, ids = text.partition(":")
    if kind not in ("cpu", "gpu") or not all(i.strip().removeprefix("gpu:").isdigit() for i in ids.split(",")):
        raise InputError(f"--ctx: expected cpu, gpu:0 or gpu:0,1, got {text!r}")
    devices = [int(i.strip().removeprefix("gpu:")) for i in ids.split(",")]
    if kind == "gpu" and max(devices) >= mx.context.num_gpus():
        raise InputError(f"--ctx {text}: this machine has {mx.context.num_gpus()} GPU(s)")
    return [getattr(mx, kind)(i) for i in devices]


# ---------------------------------------------------------------------------------------------------
# Checkpoints: NAME.params + NAME.states, then NAME.json (written last, with both files' hashes) marks
# the checkpoint complete. A crash at any moment leaves complete checkpoints and ignorable leftovers.

def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _fingerprint(net) -> dict:
    return {"spec": net.spec.name, "input": list(net.spec.input.shape),
            "params": {name: list(p.shape) for name, p in net._collect_params_with_prefix().items()}}


def save_checkpoint(folder: Path, net, trainer, state: dict, keep: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    name = f"step-{state['step']:08d}"
    savers = {".params": net.save_parameters}
    if not (trainer._distributed and trainer._update_on_kvstore):  # else the servers hold the optimizer state
        savers[".states"] = trainer.save_states
    for suffix, save in savers.items():
        save_atomically(folder / f"{name}{suffix}", save)
    meta = {**state, "fingerprint": _fingerprint(net),
            "sha256": {s: _sha256(folder / f"{name}{s}") for s in savers}}
    write_atomically(folder / f"{name}.json", json.dumps(meta, indent=1).encode())
    for old in sorted(folder.glob("step-*.json"))[:-keep]:  # the marker first: never a half-deleted "complete" one
        old.unlink()
        for suffix in (".params", ".states"):
            old.with_suffix(suffix).unlink(missing_ok=True)
    return folder / f"{name}.json"


def latest_checkpoint(folder: Path) -> dict | None:
    markers = sorted(folder.glob("step-*.json"))
    if not markers:
        return None
    meta_path = markers[-1]
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError):
        raise InputError(f"{meta_path}: corrupt checkpoint record; delete it to resume from the one before") from None
    for suffix, digest in meta.get("sha256", {}).items():
        path = meta_path.with_suffix(suffix)
        if not path.is_file() or _sha256(path) != digest:
            raise InputError(f"{path}: missing or corrupt (its checksum does not match {meta_path.name}); delete "
                             f"{meta_path.name} to resume from the checkpoint before it")
    meta["path"] = str(meta_path.with_suffix(""))
    return meta


def _restore(meta: dict, net, trainer) -> None:
    from .builder import load_parameters

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


# ---------------------------------------------------------------------------------------------------

class Progress:
    """One line per epoch: a bar, loss, accuracy, images/s and ETA; redrawn in place on a terminal."""

    def __init__(self, epoch: int, epochs: int, steps: int, stream=None):
        self.epoch, self.epochs, self.steps = epoch, epochs, steps
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.last = 0.0

    def update(self, step: int, tally: _Tally, final: bool = False) -> None:
        now = time.perf_counter()
        if not final and (now - self.last < (0.2 if self.tty else 10.0)):
            return
        self.last = now
        done = step / max(self.steps, 1)
        rate = tally.count / tally.seconds if tally.seconds else 0.0
        eta = (self.steps - step) * (tally.seconds / max(step, 1)) if rate else 0.0
        bar = "#" * int(24 * done) + "." * (24 - int(24 * done))
        line = (f"epoch {self.epoch}/{self.epochs} [{bar}] {step}/{self.steps} "
                f"loss {tally.loss / max(tally.count, 1):.4f} acc {tally.correct / max(tally.count, 1):.3f} "
                f"{rate:,.0f} img/s " + (f"{tally.seconds:.1f}s" if final else f"ETA {eta:.0f}s"))
        self.stream.write(("\r" + line + ("\n" if final else "")) if self.tty else line + "\n")
        self.stream.flush()


def _loss_and_outputs(net, loss_fn, x, y):
    outputs = net(x)
    if not isinstance(outputs, (tuple, list)):
        return loss_fn(outputs, y), outputs
    main, *aux = outputs
    weights = [head.weight for head in net.spec.aux.values()]
    return loss_fn(main, y) + sum(w * loss_fn(a, y) for w, a in zip(weights, aux)), main


def _correct(outputs, labels) -> int:
    return int((outputs.argmax(axis=1) == labels.astype("int64")).sum())


def evaluate(net, split: datasets.Split, batch_size: int = 256, ctx=None) -> tuple[float, float]:
    """(mean loss, accuracy) of `net` on a split, in inference mode; images are resized to the spec's input."""
    from mxnet import gluon, np

    ctx = ctx or [net.collect_params().list_ctx()[0]]
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    tally = _Tally()
    size = tuple(net.spec.input.shape[1:])
    for images, labels in datasets.batches(split, batch_size, onp.arange(len(split))):
        x = datasets.to_input(images, size, ctx[0])
        y = np.array(labels, ctx=ctx[0])
        out = net(x)
        tally.add(float(loss_fn(out, y).sum()), _correct(out, y), len(labels))
    return tally.loss / max(tally.count, 1), tally.correct / max(tally.count, 1)


def _check_run_folder(out: Path, config: Config, spec_name: str, resume: bool) -> None:
    """A new run needs an empty folder; a resumed one the settings it was started with."""
    if out.exists() and any(out.iterdir()) and not resume:
        raise InputError(f"{out}: the run folder is not empty; pass --resume to continue it, or choose another --out")
    run_file = out / "config.json"
    if resume and run_file.is_file():
        saved = json.loads(run_file.read_text())
        diff = {k: (saved.get("config", {}).get(k), v) for k, v in asdict(config).items()
                if k not in Config.MAY_CHANGE and saved.get("config", {}).get(k) != v}
        if diff or saved.get("spec") != spec_name:
            raise InputError(f"{out}: --resume continues a run with the same settings; these differ "
                             f"(saved, now): {diff or {'spec': (saved.get('spec'), spec_name)}}")


def _step(net, trainer, loss_fn, x, labels, contexts) -> tuple[float, int]:
    """One training step on a batch split across `contexts`; returns (summed loss, correct predictions)."""
    from mxnet import autograd, gluon, np

    xs = gluon.utils.split_and_load(x, contexts, even_split=False)
    ys = gluon.utils.split_and_load(np.array(labels, ctx=contexts[0]), contexts, even_split=False)
    with autograd.record():
        results = [_loss_and_outputs(net, loss_fn, x, y) for x, y in zip(xs, ys)]
    for loss, _ in results:
        loss.backward()
    trainer.step(len(labels))
    return (sum(float(loss.sum()) for loss, _ in results),
            sum(_correct(out, y) for (_, out), y in zip(results, ys)))


def train(spec_path, out: str | os.PathLike, config: Config, overrides=None, ctx: str | None = None,
          kvstore: str = "device", resume: bool = False, command: list[str] | None = None,
          stream=None) -> tuple[list[dict], Path]:
    """Train a spec; returns the per-epoch metrics and the run folder (`out`, or `out/worker-K` for worker K of
    a distributed run). See the module docstring and the README for what the folder holds."""
    import mxnet as mx
    from mxnet import gluon

    from . import load_spec
    from .builder import build_model
    from .resolve import annotated_yaml, load_resolved

    stream = stream or sys.stderr
    contexts = parse_contexts(ctx)
    if config.resize:
        overrides = _with_input(overrides, config.resize)
    spec = load_spec(spec_path, overrides)
    distributed = kvstore.startswith("dist")
    kv = mx.kv.create(kvstore) if distributed else kvstore
    out = Path(out)
    if distributed:
        out = out / f"worker-{kv.rank}"  # each worker keeps its own run folder
    _check_run_folder(out, config, spec.name, resume)
    train_split = datasets.load(config.data, "train", config.data_dir)  # bad data: nothing written yet
    test_split = datasets.load(config.data, "test", config.data_dir)
    size = tuple(spec.input.shape[1:])
    if train_split.images.shape[-1] != spec.input.channels:
        raise InputError(f"the data has {train_split.images.shape[-1]} channel(s); {spec.name} takes "
                         f"{spec.input.channels} (set input.channels)")
    out.mkdir(parents=True, exist_ok=True)

    mx.random.seed(config.seed)
    net = build_model(spec, ctx=contexts)
    # Distributed: the servers hold the weights and the optimizer (MXNet's default), so every worker pulls the
    # same weights. Local updates from summed gradients (update_on_kvstore=False) let workers drift apart:
    # one run in four here ended with a layer differing by 6.3 between the two workers.
    trainer = gluon.Trainer(net.collect_params(), config.optimizer, config.optimizer_params(), kvstore=kv,
                            update_on_kvstore=True if distributed else None)
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    rank, workers = (kv.rank, kv.num_workers) if distributed else (0, 1)
    if distributed:  # dist_sync needs the same number of equal batches on every worker: drop the rest
        steps = len(train_split) // workers // config.batch_size
        if steps == 0:
            raise InputError(f"{len(train_split)} training examples cannot give {workers} workers a batch of "
                             f"{config.batch_size} each")
    else:
        steps = math.ceil(len(train_split) / config.batch_size)

    history: list[dict] = []
    epoch, step, global_step, tally = 0, 0, 0, _Tally()
    meta = latest_checkpoint(out / "checkpoints") if resume else None
    if resume and not meta:
        print(f"{out}: no checkpoint to resume from; starting from the beginning", file=stream)
    if meta:
        _restore(meta, net, trainer)
        epoch, step, global_step = meta["epoch"], meta["step_in_epoch"], meta["step"]
        tally, history = _Tally(**meta["tally"]), meta["history"]
        print(f"resuming {out} at epoch {epoch + 1}, step {step}/{steps}", file=stream)
    if not meta:
        (out / "spec.yaml").write_text(annotated_yaml(load_resolved(spec_path, overrides)))
    write_atomically(out / "config.json", json.dumps({"spec": spec.name, "config": asdict(config)}, indent=1).encode())
    with open(out / "command.txt", "a") as f:
        f.write(" ".join(command or sys.argv) + "\n")

    def checkpoint():
        state = {"epoch": epoch, "step_in_epoch": step, "step": global_step, "tally": asdict(tally),
                 "history": history}
        save_checkpoint(out / "checkpoints", net, trainer, state, config.keep)

    try:
        while epoch < config.epochs:
            order = onp.random.default_rng([config.seed, epoch]).permutation(len(train_split))
            order = order[rank::workers][:steps * config.batch_size]
            progress = Progress(epoch + 1, config.epochs, steps, stream)
            for images, labels in datasets.batches(train_split, config.batch_size, order, start=step):
                started = time.perf_counter()
                mx.random.seed(config.seed * 1_000_003 + global_step)  # dropout masks do not depend on history
                tally.add(*_step(net, trainer, loss_fn, datasets.to_input(images, size, contexts[0]), labels,
                                 contexts), len(labels))
                tally.seconds += time.perf_counter() - started
                step, global_step = step + 1, global_step + 1
                progress.update(step, tally)
                if config.checkpoint_every and global_step % config.checkpoint_every == 0 and step < steps:
                    checkpoint()
            progress.update(step, tally, final=True)
            test_loss, test_acc = evaluate(net, test_split, max(config.batch_size, 256), contexts)
            history.append({"epoch": epoch + 1, "train_loss": tally.loss / max(tally.count, 1),
                            "train_acc": tally.correct / max(tally.count, 1), "test_loss": test_loss,
                            "test_acc": test_acc, "images_per_s": tally.count / max(tally.seconds, 1e-9),
                            "seconds": tally.seconds})
            print(f"epoch {epoch + 1}: test loss {test_loss:.4f}, test acc {test_acc:.3f}", file=stream)
            epoch, step, tally = epoch + 1, 0, _Tally()
            _write_metrics(out, history)
            checkpoint()
    except KeyboardInterrupt:
        last = latest_checkpoint(out / "checkpoints")
        where = f"epoch {last['epoch'] + 1}, step {last['step_in_epoch']}" if last else "the start"
        raise TrainingInterrupted(f"interrupted in epoch {epoch + 1} at step {step}; the last checkpoint is at "
                                  f"{where}. Continue with the same command and --resume") from None
    save_atomically(out / "final.params", net.save_parameters)
    _plot(out, history)
    return history, out


def _with_input(overrides, resize: int):
    extra = {"input.height": resize, "input.width": resize}
    if overrides is None:
        return extra
    if isinstance(overrides, dict):
        return {**overrides, **extra}
    return [*overrides, *(f"{k}={v}" for k, v in extra.items())]


def _write_metrics(out: Path, history: list[dict]) -> None:
    import io

    text = io.StringIO()
    writer = csv.DictWriter(text, METRICS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: (round(v, 6) if isinstance(v, float) else v) for k, v in row.items()} for row in history)
    write_atomically(out / "metrics.csv", text.getvalue().encode())
    write_atomically(out / "metrics.json", json.dumps(history, indent=1).encode())


def _plot(out: Path, history: list[dict]) -> None:
    """The curves D2L's `train_ch6` draws: train loss, train accuracy and test accuracy by epoch."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no curves.png (pip install 'archspec[d2l]')", file=sys.stderr)
        return
    epochs = [h["epoch"] for h in history]
    fig, ax = plt.subplots(figsize=(4.5, 3.2), dpi=120)
    for key, style, label in (("train_loss", "-", "train loss"), ("train_acc", "m--", "train acc"),
                              ("test_acc", "g-.", "test acc")):
        ax.plot(epochs, [h[key] for h in history], style, label=label)
    ax.set_xlabel("epoch")
    ax.set_xlim(1, max(epochs[-1], 2))
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    save_atomically(out / "curves.png", lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)
