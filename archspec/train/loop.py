"""Training and evaluation with Gluon's own pieces: the built network hybridized, `gluon.Trainer`,
softmax cross-entropy (plus the auxiliary heads' weighted losses), MXNet's kvstore for several
devices or machines. A run folder holds everything a run produces; checkpoints make it resumable.

Determinism: the data order of epoch e is a permutation seeded by (seed, e), and MXNet's generator is
reseeded from (seed, step) before every step, so a run resumed from a checkpoint repeats exactly what
an uninterrupted run does.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, TextIO, Union

import mxnet as mx
import numpy as onp
from mxnet import autograd, gluon, np

from ..files import save_atomically, write_atomically
from ..gluon.build import build_model
from ..gluon.check import uses_own_kinds
from ..gluon.modules import Network
from ..gluon.precision import mixed_bfloat16, require_bfloat16, warn_if_slower
from ..gluon.transfer import transfer
from ..gluon.tuning import freeze, lr_mult
from ..spec import Overrides, validate, with_overrides
from ..spec.analysis import summarize
from ..spec.diagnostics import InputError
from ..spec.resolve import annotated_yaml, load_resolved
from . import failpoints
from . import data as datasets
from . import optimization
from . import stream as streaming
from .checkpoints import latest_checkpoint, restore, save_checkpoint
from .config import Config, factors, parse_devices
from .folder import CLASSES_FILE, RunFolder, check_new, network_identity
from .transforms import TransformError

METRICS = ("epoch", "train_loss", "train_acc", "test_loss", "test_acc", "images_per_s", "seconds", "lr",
           "step_share")


class TrainingInterrupted(Exception):
    """Ctrl-C: the message says where the run stopped and how to resume it."""


class TrainingDiverged(InputError):
    """The loss or the weights became infinite or NaN: the run stopped before writing them (no checkpoint or
    final.params of them), keeping the checkpoints from before. `reason` says what and where, in one line (a search
    records it on the trial)."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


@dataclass
class _Totals:
    """Running totals of the batches seen so far in an epoch: summed loss, correct predictions, examples, seconds."""

    loss: float = 0.0
    correct: int = 0
    count: int = 0
    seconds: float = 0.0  # in steps
    wall: float = 0.0  # in steps and waiting for their batches (not in checkpoints)

    def add(self, loss: float, correct: int, count: int) -> None:
        self.loss, self.correct, self.count = self.loss + loss, self.correct + correct, self.count + count


def parse_contexts(text: Optional[str]) -> list[Any]:
    """`cpu`, `gpu:0,1`, `gpu:0,gpu:1` -> a list of MXNet contexts (the grammar is `config.parse_devices`)."""
    try:
        devices = parse_devices(text or "cpu")
    except ValueError as e:
        raise InputError(f"--ctx: {e}, got {text!r}") from None
    if devices.kind == "gpu" and max(devices.ids) >= mx.context.num_gpus():
        raise InputError(f"--ctx {text}: this machine has {mx.context.num_gpus()} GPU(s)")
    return [getattr(mx, devices.kind)(i) for i in devices.ids]


class Progress:
    """One line per epoch: a bar, loss, accuracy, images/s and ETA; redrawn in place on a terminal."""

    def __init__(self, epoch: int, epochs: int, steps: int, stream: Optional[TextIO] = None):
        self.epoch, self.epochs, self.steps = epoch, epochs, steps
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.last = 0.0

    def update(self, step: int, tally: _Totals, final: bool = False) -> None:
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


def loss_and_outputs(net: Network, model: Any, loss_fn: Any, x: Any, y: Any) -> tuple[Any, Any]:
    """The loss of `model`'s outputs (`net`, or its graph in another precision; with auxiliary heads, theirs
    weighted as the spec says) and its main output. The benchmarks' training steps use it too."""
    outputs = model(x)
    if not isinstance(outputs, (tuple, list)):
        return loss_fn(outputs, y), outputs
    main, *aux = outputs
    weights = [head.weight for head in net.spec.aux.values()]
    return loss_fn(main, y) + sum(w * loss_fn(a, y) for w, a in zip(weights, aux)), main


def _correct(outputs: Any, labels: Any) -> int:
    return int((outputs.argmax(axis=1) == labels.astype("int64")).sum())


def evaluate(net: Network, split: Union[datasets.Split, streaming.Source], batch_size: int = 256, ctx: Any = None,
             predicted: Optional[list[int]] = None, model: Any = None,
             pipeline: Optional[streaming.Pipeline] = None) -> tuple[float, float]:
    """(mean loss, accuracy) of `net` on a split, in inference mode; images are resized to the spec's input
    (or go through `pipeline`, the recipe's evaluation transforms or a stream of `split`).
    Each example's predicted class is appended to `predicted` when it is given. `model` computes the outputs
    instead of `net` (its bfloat16 or INT8 conversion, `gluon.precision`)."""
    model = model or net
    ctx = ctx or [net.collect_params().list_ctx()[0]]
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    tally = _Totals()
    size = (net.spec.input.height, net.spec.input.width)
    for images, labels in _batches(split, pipeline, batch_size, onp.arange(len(split))):
        x = np.array(images, ctx=ctx[0]) if pipeline else datasets.to_input(images, size, ctx[0])
        y = np.array(labels, ctx=ctx[0])
        out = model(x)
        tally.add(float(loss_fn(out, y).sum()), _correct(out, y), len(labels))
        if predicted is not None:
            predicted.extend(int(k) for k in out.argmax(axis=1).asnumpy())
    return tally.loss / max(tally.count, 1), tally.correct / max(tally.count, 1)


def _batches(data: Any, pipeline: Optional[streaming.Pipeline], batch_size: int, order: onp.ndarray, start: int = 0,
             epoch: int = 0) -> Iterator[tuple[onp.ndarray, onp.ndarray]]:
    """Batches of `order`: through the pipeline (float32, made the network's input), or as uint8 images from memory
    (resized on the device by `data.to_input`)."""
    if pipeline is not None:
        return pipeline.batches(order, batch_size, start, epoch)
    split = data.split if isinstance(data, streaming.MemorySource) else data
    return datasets.batches(split, batch_size, order, start)


def _finite(net: Network) -> bool:
    """Whether every parameter (and batch norm's running statistics) of `net` is finite."""
    return all(bool(onp.isfinite(p.data().asnumpy()).all()) for p in net.collect_params().values())


def _step(net: Network, model: Any, trainer: Any, loss_fn: Any, x: Any, labels: Any,
          contexts: list[Any]) -> tuple[float, int]:
    """One training step of `model` (`net`, or its mixed-precision graph) on a batch split across `contexts`;
    returns (summed loss, correct predictions)."""
    xs = gluon.utils.split_and_load(x, contexts, even_split=False)
    ys = gluon.utils.split_and_load(np.array(labels, ctx=contexts[0]), contexts, even_split=False)
    with autograd.record():
        results = [loss_and_outputs(net, model, loss_fn, x, y) for x, y in zip(xs, ys)]
    for loss, _ in results:
        loss.backward()
    trainer.step(len(labels))
    return (sum(float(loss.sum()) for loss, _ in results),
            sum(_correct(out, y) for (_, out), y in zip(results, ys)))


@dataclass
class _Run:
    """A run in progress: what `_setup` made, and where it is (epoch, step, the epoch's tally, history)."""

    config: Config
    out: Path
    net: Network
    model: Any  # what a training step runs: `net`, or its mixed-precision graph over the same parameters
    trainer: Any
    contexts: list[Any]
    data: streaming.Data
    steps: int  # per epoch
    rank: int
    workers: int
    stream: TextIO
    folder: RunFolder
    epoch: int = 0
    step: int = 0  # within the epoch
    global_step: int = 0
    tally: _Totals = field(default_factory=_Totals)
    history: list[dict[str, Any]] = field(default_factory=list)
    loss_fn: Any = field(default_factory=gluon.loss.SoftmaxCrossEntropyLoss)

    def checkpoint(self) -> None:
        if not _finite(self.net):  # a checkpoint of NaN weights would be resumed from, or taken for a result
            raise self.diverged("the weights became infinite or NaN")
        state = {"epoch": self.epoch, "step_in_epoch": self.step, "step": self.global_step,
                 "tally": asdict(self.tally), "history": self.history}
        save_checkpoint(self.out / "checkpoints", self.net, self.trainer, state, self.config.keep)

    def resume_from(self, meta: dict[str, Any]) -> None:
        restore(meta, self.net, self.trainer)
        self.epoch, self.step, self.global_step = meta["epoch"], meta["step_in_epoch"], meta["step"]
        self.tally, self.history = _Totals(**meta["tally"]), meta["history"]

    def run_epoch(self) -> None:
        """The rest of the current epoch, from `step`; then test, metrics and an end-of-epoch checkpoint."""
        config, size = self.config, (self.net.spec.input.height, self.net.spec.input.width)
        order = streaming.shard(config.seed, self.epoch, len(self.data.train), self.rank, self.workers,
                                self.steps * config.batch_size)
        progress = Progress(self.epoch + 1, config.epochs, self.steps, self.stream)
        pipeline = self.data.train_pipeline
        waiting = time.perf_counter()
        for images, labels in _batches(self.data.train, pipeline, config.batch_size, order, self.step, self.epoch):
            started = time.perf_counter()
            mx.random.seed(config.seed * 1_000_003 + self.global_step)  # dropout masks do not depend on history
            x = (np.array(images, ctx=self.contexts[0]) if pipeline
                 else datasets.to_input(images, size, self.contexts[0]))
            loss, correct = _step(self.net, self.model, self.trainer, self.loss_fn, x, labels, self.contexts)
            if not math.isfinite(loss):  # the loss is read every step anyway: the check costs nothing
                self.step += 1  # the step that gave it, as the progress bar counts
                raise self.diverged(f"the training loss became {loss}")
            self.tally.add(loss, correct, len(labels))
            self.tally.seconds += time.perf_counter() - started
            self.tally.wall += time.perf_counter() - waiting
            self.step, self.global_step = self.step + 1, self.global_step + 1
            progress.update(self.step, self.tally)
            if config.checkpoint_every and self.global_step % config.checkpoint_every == 0 and self.step < self.steps:
                self.checkpoint()
            failpoints.reached("step", self.global_step)
            waiting = time.perf_counter()
        progress.update(self.step, self.tally, final=True)
        test_loss, test_acc = evaluate(self.net, self.data.test, max(config.batch_size, 256), self.contexts,
                                       pipeline=self.data.test_pipeline)
        if not math.isfinite(test_loss):  # finite weights too large for the network's outputs
            raise self.diverged(f"the test loss became {test_loss}")
        t = self.tally
        self.history.append({"epoch": self.epoch + 1, "train_loss": t.loss / max(t.count, 1),
                             "train_acc": t.correct / max(t.count, 1), "test_loss": test_loss, "test_acc": test_acc,
                             "images_per_s": t.count / max(t.seconds, 1e-9), "seconds": t.seconds,
                             "lr": float(self.trainer.learning_rate),  # the rate of the epoch's last step
                             "step_share": t.seconds / max(t.wall, 1e-9)})  # the rest: waiting for data
        print(f"epoch {self.epoch + 1}: test loss {test_loss:.4f}, test acc {test_acc:.3f}", file=self.stream)
        self.epoch, self.step, self.tally = self.epoch + 1, 0, _Totals()
        _write_metrics(self.out, self.history)
        self.checkpoint()

    def interrupted(self) -> TrainingInterrupted:
        last = latest_checkpoint(self.out / "checkpoints")
        where = f"epoch {last['epoch'] + 1}, step {last['step_in_epoch']}" if last else "the start"
        return TrainingInterrupted(f"interrupted in epoch {self.epoch + 1} at step {self.step}; the last checkpoint "
                                   f"is at {where}. Continue with the same command and --resume")

    def diverged(self, what: str) -> TrainingDiverged:
        """The error that stops a run whose loss or weights became non-finite: where, at which rate, what the run
        folder keeps, and what to do."""
        config, last = self.config, latest_checkpoint(self.out / "checkpoints")
        rate = float(self.trainer.learning_rate)
        rates = f"learning rate {rate:g}" + (f", --lr {config.lr:g}" if rate != config.lr else "") + \
            (f", weight decay {config.weight_decay:g}" if config.weight_decay else "")
        reason = f"{what} in epoch {self.epoch + 1} at step {self.step} ({rates})"
        advice = (f"{self.out} keeps its checkpoints from before (the last: epoch {last['epoch'] + 1}, step "
                  f"{last['step_in_epoch']}) and no final.params: start from the last good weights with --init "
                  f"{last['path']}.params, a lower --lr and a new --out (--resume with the same settings would "
                  "repeat the same steps)" if last else
                  f"{self.out} keeps no checkpoint (none was written before) and no final.params: train again with "
                  "a lower --lr and a new --out")
        return TrainingDiverged(f"training diverged: {reason}. Lower --lr (e.g. {config.lr / 10:g})"
                                + (" or --wd" if config.weight_decay else "") + f". {advice}", reason)

    def stopped_by(self, error: InputError) -> InputError:
        """`error` (a corrupt image in streamed data, or one too small for a crop), with what the run left on
        disk; a `TransformError` stays one, to be located in the recipe."""
        last = latest_checkpoint(self.out / "checkpoints")
        kept = f"its last checkpoint (epoch {last['epoch'] + 1}, step {last['step_in_epoch']})" if last else \
            "its settings and no checkpoint"
        message = (f"{error}\nthe run stopped in epoch {self.epoch + 1} at step {self.step}; {self.out} keeps {kept}. "
                   "--resume checks that the data is unchanged: with the file restored it continues; after removing "
                   "or replacing it, train again in a new run folder")
        if isinstance(error, TransformError):
            return TransformError(error.index, error.name, message, error.field)
        return InputError(message)

    def finish(self) -> None:
        save_atomically(self.out / "final.params", self.net.save_parameters)
        _plot(self.out, self.history)


def load_data(spec: Any, config: Config) -> streaming.Data:
    """The training and test data, checked against the network: channels, and labels it has outputs for; the
    recipe's transforms tried on them."""
    data = streaming.prepare(config, spec.input.shape, (spec.input.height, spec.input.width))
    splits = (data.train, data.test)
    first = data.train.image(0) if len(data.train) else None
    if first is not None and first.shape[-1] != spec.input.channels:
        raise InputError(f"the data has {first.shape[-1]} channel(s); {spec.name} takes "
                         f"{spec.input.channels} (set input.channels)")
    classes = summarize(spec).output
    if len(classes) != 1:
        raise InputError(f"{spec.name} outputs {'x'.join(map(str, classes))}, not one score a class; end it with "
                         "a dense layer")
    names = splits[0].classes
    if names and len(names) != classes[0]:  # trainable, but its outputs could never all be named
        raise InputError(f"{splits[0].source}: {len(names)} classes ({', '.join(names[:5])}"
                         f"{', ...' if len(names) > 5 else ''}), but {spec.name} has {classes[0]} outputs; make them "
                         f"equal (a spec with a num_classes argument: --set num_classes={len(names)})")
    for split in splits:
        streaming.check(split, classes[0])
    return data


@dataclass(frozen=True)
class _Request:
    """What `train` was asked to do, as `_setup` reads it."""

    spec_path: Any
    out: Path
    config: Config
    overrides: Overrides
    resume: bool
    force: bool
    command: str  # as the run folder records it
    stream: TextIO
    base_outside: bool
    sized: bool  # the spec already has the run's input (a search's trial): --resize is not applied again


def _setup(request: _Request) -> _Run:
    """Everything checked before the run folder is touched, then the network, the trainer and the folder."""
    config, out, resume, stream = request.config, request.out, request.resume, request.stream
    contexts = parse_contexts(config.ctx)
    if config.precision == "bf16":
        if any(c.device_type != "cpu" for c in contexts):
            raise InputError(f"--precision bf16 trains on the CPU (oneDNN's bfloat16 kernels), not --ctx {config.ctx}")
        require_bfloat16("--precision bf16")
        warn_if_slower("bf16", training=True)
    overrides = request.overrides if request.sized else with_overrides(request.overrides, config.input_overrides())
    tree = load_resolved(request.spec_path, overrides, request.base_outside)  # resolved once: spec.yaml is its text
    spec = validate(tree)
    if any(uses_own_kinds(layers) for _, layers in spec.layers()):
        build_model(spec, hybridize=False)  # a plugin's block that breaks its shape rule: refused before the folder
    distributed = config.kvstore.startswith("dist")
    kv: Any = mx.kv.create(config.kvstore) if distributed else config.kvstore
    rank, workers = (kv.rank, kv.num_workers) if distributed else (0, 1)
    if distributed:
        out = out / f"worker-{rank}"  # each worker keeps its own run folder
    check_new(out, resume)
    data = load_data(spec, config)  # bad data: nothing written yet
    print(f"data: {data.chosen}", file=stream)
    train_split, test_split = data.train, data.test
    if distributed:  # dist_sync needs the same number of equal batches on every worker: drop the rest
        steps = len(train_split) // workers // config.batch_size
        if steps == 0:
            raise InputError(f"{len(train_split)} training examples cannot give {workers} workers a batch of "
                             f"{config.batch_size} each")
    else:
        steps = math.ceil(len(train_split) / config.batch_size)
    mx.random.seed(config.seed)
    net = build_model(spec, ctx=contexts)
    # before the folder: a stage they cannot find is a typo, refused with nothing written; before the trainer,
    # which then leaves the frozen arrays alone
    freeze(net, config.freeze)
    lr_mult(net, factors(config.lr_mult))
    # --init is read before the folder too (a missing, corrupt or unfitting file: nothing written), unless a run
    # is resumed: its folder exists already, and says first whether --resume's settings are the run's; its
    # checkpoint, if it has one, holds the weights, and --init's file is not read again (it may be gone)
    init, early = config.init, not (resume and out.exists())

    def start_from(path: str) -> None:
        net.transferred = transfer(net, path, config.strict)
        print(net.transferred.report(), file=stream)

    if init is not None and early:
        start_from(init)
    folder = RunFolder(out, request.command)  # locked from here on: no other run writes here
    identity = {"network": network_identity(spec),
                "data": {"train": train_split.fingerprint(), "test": test_split.fingerprint()}}
    meta = latest_checkpoint(out / "checkpoints") if resume else None
    folder.check(config, identity, resume, meta["epoch"] if meta else None, request.force)

    if init is not None and not early and not meta:
        start_from(init)
    if config.no_bias_decay:
        optimization.no_decay_on_biases_and_norms(net)
    schedule = optimization.scheduler(config, steps)
    # Distributed: the servers hold the weights and the optimizer (MXNet's default), so every worker pulls the
    # same weights. Local updates from summed gradients (update_on_kvstore=False) let workers drift apart:
    # one run in four here ended with a layer differing by 6.3 between the two workers.
    trainer = gluon.Trainer(net.collect_params(), config.optimizer,
                            {**config.optimizer_params(), **({"lr_scheduler": schedule} if schedule else {})}, kvstore=kv,
                            update_on_kvstore=True if distributed else None)
    model = mixed_bfloat16(net) if config.precision == "bf16" else net
    run = _Run(config=config, out=out, net=net, model=model, trainer=trainer, contexts=contexts, data=data,
               steps=steps, rank=rank, workers=workers, stream=stream, folder=folder, loss_fn=optimization.loss(config))
    if resume and not meta:
        print(f"{out}: no checkpoint to resume from; starting from the beginning", file=stream)
    if meta:
        run.resume_from(meta)  # refuses a checkpoint whose parameter shapes differ
    if resume:
        folder.same_network(identity["network"])  # and a network that differs in anything else
    if meta:
        print(f"resuming {out} at epoch {run.epoch + 1}, step {run.step}/{steps}", file=stream)
    else:
        (out / "spec.yaml").write_text(annotated_yaml(tree))
        if train_split.classes:  # what `archspec predict` calls the network's outputs
            write_atomically(out / CLASSES_FILE, json.dumps(list(train_split.classes), indent=1).encode())
    folder.record(config, identity)
    with open(out / "command.txt", "a") as f:
        f.write(request.command + "\n")
    return run


def train(spec_path: Union[str, os.PathLike[str]], out: Union[str, os.PathLike[str]], config: Config = Config(),
          overrides: Overrides = None, resume: bool = False, command: Optional[list[str]] = None,
          stream: Optional[TextIO] = None, force: bool = False, base_outside: bool = False,
          on_epoch: Optional[Callable[[list[dict[str, Any]]], None]] = None,
          recipe: Optional[str] = None, sized: bool = False) -> tuple[list[dict[str, Any]], Path]:
    """Train a spec; returns the per-epoch metrics and the run folder (`out`, or `out/worker-K` for worker K of
    a distributed run). See the module docstring and the README for what the folder holds. `force` trains a
    finished run again; `base_outside` follows a `base:` outside the spec's project. `on_epoch(history)` is called
    after each epoch's checkpoint (a search reports to its pruner there); an exception it raises stops the run,
    which stays resumable. `recipe`: the run's settings with their origins (`recipe.Recipe.describe`), kept in the
    run folder as recipe.yaml. `sized`: the spec already has the run's input (a search's trial, sampled with
    `--resize` applied), which is not applied again."""
    run = _setup(_Request(spec_path, Path(out), config, overrides, resume, force, " ".join(command or sys.argv),
                          stream or sys.stderr, base_outside, sized))
    if recipe is not None:
        write_atomically(run.out / "recipe.yaml", recipe.encode())
    try:
        while run.epoch < config.epochs:
            run.run_epoch()
            if on_epoch is not None:
                on_epoch(list(run.history))
        run.finish()
    except KeyboardInterrupt:
        raise run.interrupted() from None
    except TrainingDiverged:
        raise
    except InputError as e:  # a bad image met mid-epoch: streamed data is decoded as it is read
        raise run.stopped_by(e) from None
    finally:
        run.data.close()
        run.folder.release()  # finished or stopped by an exception: the folder goes at once, not when collected
    return run.history, run.out



def _write_metrics(out: Path, history: list[dict[str, Any]]) -> None:
    text = io.StringIO()
    writer = csv.DictWriter(text, METRICS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: (round(v, 6) if isinstance(v, float) else v) for k, v in row.items()} for row in history)
    write_atomically(out / "metrics.csv", text.getvalue().encode())
    write_atomically(out / "metrics.json", json.dumps(history, indent=1).encode())


def _plot(out: Path, history: list[dict[str, Any]]) -> None:
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
    rates = [h.get("lr") for h in history]  # a run recorded before rates were: none
    if all(r is not None for r in rates):
        lr_axis = ax.twinx()
        lr_axis.plot(epochs, rates, "k:", label="lr")
        lr_axis.set_ylabel("learning rate")
        lr_axis.legend(loc="lower left")
    ax.legend()
    fig.tight_layout()
    save_atomically(out / "curves.png", lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)
