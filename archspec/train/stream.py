"""Data for training at any size: a *source* gives one decoded image at a time (from memory, an image folder or a
RecordIO file), a *pipeline* turns examples into batches through a recipe's transforms, in worker processes, with
at most `prefetch` batches decoded ahead, so memory is bounded by the prefetch, not by the dataset.

Which path a run takes (`choose`): IDX data and image folders whose decoded images fit in `MEMORY_LIMIT` are
decoded once into memory (`data.Split`, the path of earlier releases, which is faster when it fits); larger
folders and RecordIO files stream. Without transforms, the in-memory path batches exactly as before.

Determinism: the examples of epoch e are a permutation seeded by (seed, e), cut into one shard a worker (`shard`);
each example's random transform is seeded by (seed, e, example number), so neither the worker process nor the
moment a run was resumed changes a pixel.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import multiprocessing
import os
import warnings
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import numpy as onp

from ..spec.diagnostics import InputError
from . import transforms
from .config import Config
from .data import Split
from .recordio import RecordFile

MEMORY_LIMIT = 1 << 30  # decoded bytes up to which an image folder is held in memory (loader: auto)
RECORD_FILES = ("train.rec", "test.rec")


def shard(seed: int, epoch: int, examples: int, rank: int, workers: int, count: int) -> onp.ndarray:
    """The example numbers worker `rank` of `workers` reads in `epoch`, in order: its slice of the epoch's
    permutation, `count` long. The workers' shards are disjoint and, when `count` x `workers` is the whole
    epoch, cover it."""
    order = onp.random.default_rng([seed, epoch]).permutation(examples)
    return order[rank::workers][:count]


class Source:
    """Examples one at a time: `image(k)` is uint8 H x W x C with the network's channels."""

    source: str
    classes: tuple[str, ...]
    labels: onp.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def image(self, k: int) -> onp.ndarray:
        raise NotImplementedError

    def where(self, k: int) -> str:
        """Example `k` as an error names it: its file, or its record."""
        return f"{self.source} example {k}"

    @property
    def names(self) -> tuple[str, ...]:
        """Each example's file, where it has one (for predictions)."""
        return ()

    def fingerprint(self) -> dict[str, Any]:
        raise NotImplementedError


class MemorySource(Source):
    """A `data.Split` already in memory."""

    def __init__(self, split: Split):
        self.split, self.source, self.classes, self.labels = split, split.source, split.classes, split.labels

    def image(self, k: int) -> onp.ndarray:
        return self.split.images[k]

    def fingerprint(self) -> dict[str, Any]:
        return self.split.fingerprint()


class FolderSource(Source):
    """Image files, decoded when read."""

    def __init__(self, root: Path, items: Sequence[tuple[Path, int]], classes: Sequence[str], channels: int,
                 source: str):
        self.root, self.paths, self.channels = root, [p for p, _ in items], channels
        self.labels = onp.array([label for _, label in items], onp.int32)
        self.classes, self.source = tuple(classes), source

    def image(self, k: int) -> onp.ndarray:
        path = self.paths[k]
        try:
            data = path.read_bytes()
        except OSError as e:
            raise InputError(f"{path}: cannot read: {e.strerror}") from None
        return decode(data, str(path), self.channels)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(str(p.relative_to(self.root)) for p in self.paths)

    def where(self, k: int) -> str:
        return str(self.paths[k])

    def fingerprint(self) -> dict[str, Any]:
        """The files' names, sizes and labels (hashing every image's bytes would read the whole dataset)."""
        digest = hashlib.sha256()
        for path, label in zip(self.paths, self.labels):
            digest.update(f"{path.relative_to(self.root).as_posix()}\0{path.stat().st_size}\0{label}\n".encode())
        return {"examples": len(self), "files": digest.hexdigest(), "classes": list(self.classes)}


class RecordSource(Source):
    """A .rec file packed by `archspec pack` (or `im2rec`), read through its index."""

    def __init__(self, path: Path, channels: int):
        self.file, self.channels, self.source = RecordFile(path), channels, str(path)
        self.labels, self.classes = self.file.labels, self.file.classes

    def image(self, k: int) -> onp.ndarray:
        return decode(self.file.payload(k), self.where(k), self.channels)

    def where(self, k: int) -> str:
        return f"{self.source} record {k}"

    def fingerprint(self) -> dict[str, Any]:
        index = self.file.path.with_suffix(".idx").read_bytes()
        return {"examples": len(self), "index": hashlib.sha256(index).hexdigest(), "bytes": self.file.size,
                **({"classes": list(self.classes)} if self.classes else {})}


def decode(data: bytes, name: str, channels: int) -> onp.ndarray:
    """An encoded image (PNG, JPEG, ...) as uint8 H x W x `channels`, at its own size; refused by `name`."""
    from PIL import Image, UnidentifiedImageError

    from .images import MAX_PIXELS, _eight_bit

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as image:
                if image.width * image.height > MAX_PIXELS:
                    raise InputError(f"{name}: {image.width * image.height:,} pixels is more than archspec decodes")
                image.load()
                return _eight_bit(image, channels)
    except UnidentifiedImageError:
        raise InputError(f"{name}: not an image (no format Pillow reads)") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise InputError(f"{name}: corrupt or truncated image ({e})") from None


@dataclass
class Pipeline:
    """Batches of a source through `steps`, made `size` (the network's height and width), float32 N x C x H x W.
    Holds a pool of `workers` forked processes (made at the first batch, closed by `close`), which inherit the
    source: only example numbers and finished batches cross between processes."""

    source: Source
    steps: transforms.Transforms
    size: tuple[int, int]
    seed: int
    workers: int
    prefetch: int
    field: str = "augment"  # which of the recipe's lists `steps` is (augment, evaluate), for errors
    _pool: Any = None

    def example(self, k: int, epoch: int) -> onp.ndarray:
        rng = onp.random.default_rng([self.seed, epoch, int(k)])
        try:
            return transforms.apply(self.steps, self.source.image(int(k)), rng, self.size)
        except transforms.TransformError as e:  # a crop larger than this image: which image, which list
            raise e.about(self.source.where(int(k)), self.field) from None

    def batch(self, indices: onp.ndarray, epoch: int) -> tuple[onp.ndarray, onp.ndarray]:
        _test_record_reads(self.source, indices, epoch)
        return onp.stack([self.example(k, epoch) for k in indices]), self.source.labels[indices]

    def batches(self, order: onp.ndarray, batch_size: int, start: int = 0,
                epoch: int = 0) -> Iterator[tuple[onp.ndarray, onp.ndarray]]:
        """The batches of `order` from batch number `start` on, in order, `prefetch` of them in flight."""
        chunks = [order[i:i + batch_size] for i in range(start * batch_size, len(order), batch_size)]
        if self.workers <= 1:
            for chunk in chunks:
                yield self.batch(chunk, epoch)
            return
        pool = self._start()
        pending: deque[Any] = deque()
        for chunk in chunks:
            pending.append(pool.apply_async(_work, (chunk, epoch)))
            if len(pending) >= self.prefetch:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()

    def _start(self) -> Any:
        if self._pool is None:  # forked: the workers inherit the pipeline, never pickled
            self._pool = multiprocessing.get_context("fork").Pool(self.workers, initializer=_worker_start,
                                                                  initargs=(self,))
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None


_WORKER: list[Pipeline] = []  # in a worker process: the pipeline it makes batches for


def _test_record_reads(source: Source, indices: onp.ndarray, epoch: int) -> None:
    """For tests of sharding: ARCHSPEC_TEST_READS=DIR appends each example number a process reads (epoch, number)
    to DIR/PID-SOURCE.txt."""
    folder = os.environ.get("ARCHSPEC_TEST_READS")
    if folder:
        with open(Path(folder) / f"{os.getpid()}-{Path(source.source).name}.txt", "a") as f:
            f.write("".join(f"{epoch} {int(k)}\n" for k in indices))


def _worker_start(pipeline: Pipeline) -> None:
    """A worker keeps its pipeline, and ends when the training process does, even by SIGKILL (else it would wait
    on its queue forever): Linux's PR_SET_PDEATHSIG; elsewhere nothing."""
    import ctypes
    import signal

    _WORKER[:] = [pipeline]
    try:
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _work(indices: onp.ndarray, epoch: int) -> tuple[onp.ndarray, onp.ndarray]:
    return _WORKER[0].batch(indices, epoch)


def check(source: Source, classes: int) -> None:
    """Refuse a source that cannot train a network of `classes` outputs: empty, or a label out of range."""
    if isinstance(source, MemorySource):
        source.split.check(classes)
        return
    if len(source) == 0:
        raise InputError(f"{source.source}: no examples")
    bad = onp.flatnonzero((source.labels < 0) | (source.labels >= classes))
    if len(bad):
        raise InputError(f"{source.source}: label {int(source.labels[bad[0]])} (example {int(bad[0])}, and "
                         f"{len(bad) - 1} more) is outside 0..{classes - 1}; the network has {classes} outputs")


def worker_count(config: Config) -> int:
    return config.workers or max(1, min(4, (os.cpu_count() or 1)))


@dataclass
class Data:
    """A run's data: the sources, and the pipelines that batch them (None: the in-memory batches of earlier
    releases), and what was chosen, said to the user."""

    train: Source
    test: Source
    train_pipeline: Optional[Pipeline]
    test_pipeline: Optional[Pipeline]
    chosen: str

    def close(self) -> None:
        for pipeline in (self.train_pipeline, self.test_pipeline):
            if pipeline is not None:
                pipeline.close()


def sources(config: Config, shape: tuple[int, int, int]) -> tuple[Source, Source, str]:
    """The training and test sources of `config.data_dir`, and which path was chosen (in words)."""
    from . import data as datasets
    from .images import _list, is_image_folder

    folder = Path(config.data_dir) if config.data_dir else None
    if folder is not None and folder.is_file() and folder.suffix == ".rec":
        raise InputError(f"{folder}: --data-dir names the folder that holds train.rec and test.rec (archspec pack "
                         "DIR -o FOLDER writes them)")
    if folder is not None and folder.is_dir() and any((folder / name).exists() for name in RECORD_FILES):
        if config.loader == "memory":
            raise InputError(f"{folder}: RecordIO data is streamed; --loader memory is for IDX files and image "
                             "folders")
        train, test = (RecordSource(folder / name, shape[0]) for name in RECORD_FILES)
        return train, test, f"streamed from RecordIO ({len(train):,} training images)"
    image_folder = folder is not None and folder.is_dir() and is_image_folder(folder) and not any(
        (folder / n).exists() or (folder / f"{n}.gz").exists() for pair in datasets.IDX_FILES.values() for n in pair)
    if image_folder and folder is not None:
        listed = [_list(folder, split, config.test_fraction) for split in ("train", "test")]
        decoded = len(listed[0][1]) * shape[0] * shape[1] * shape[2]
        # memory holds the images resized to the network's input: a recipe's crops and resizes are written for
        # each image at its own size (resize 256, then crop 224), so a folder with transforms streams
        transformed = bool(config.augment or config.evaluate)
        if config.loader == "memory" and transformed:
            raise InputError(f"{folder}: --loader memory holds images resized to the network's input, and the "
                             "recipe's transforms (augment, evaluate) take each image at its own size; use --loader "
                             "stream or auto")
        if config.loader == "stream" or (config.loader == "auto" and (decoded > MEMORY_LIMIT or transformed)):
            train_f, test_f = (FolderSource(folder, items, classes, shape[0], f"{folder} ({split})")
                               for (classes, items), split in zip(listed, ("train", "test")))
            why = ("" if config.loader == "stream" else " (the recipe's transforms take each image at its own size)"
                   if transformed else f" ({decoded / 2**30:.1f} GiB decoded would not fit in 1 GiB)")
            return train_f, test_f, f"streamed from the image folder{why}"
        if config.loader == "auto":
            chosen = f"decoded into memory ({decoded / 2**20:,.0f} MiB at the network's input size)"
        else:
            chosen = "decoded into memory"
    else:
        chosen = "in memory"
    key = (config.data, config.data_dir, config.test_fraction, tuple(shape), _stamp(folder))
    if key not in _LOADED:
        loaded = tuple(datasets.load(config.data, split, config.data_dir, shape, config.test_fraction)
                       for split in ("train", "test"))
        if _KEEP:
            _LOADED.clear()
            _LOADED[key] = loaded
        train_split, test_split = loaded
    else:
        train_split, test_split = _LOADED[key]
    return MemorySource(train_split), MemorySource(test_split), chosen


#: the last data decoded into memory, by what it was read from (settings, and the files' names, sizes and
#: times), kept only in a process that asked for it (`keep_loaded_data`)
_LOADED: dict[tuple[Any, ...], tuple[Split, ...]] = {}
_KEEP: list[bool] = []


@contextlib.contextmanager
def loaded_data_kept() -> Iterator[None]:
    """Within: the last data decoded into memory is kept for the next run on the same data (a search worker,
    whose trials train one after another on the same files, decodes them once); after: dropped."""
    _KEEP.append(True)
    try:
        yield
    finally:
        _KEEP.pop()
        if not _KEEP:
            _LOADED.clear()


def _stamp(folder: Optional[Path]) -> tuple[Any, ...]:
    """The names, sizes and modification times of every file in a data folder (data small enough to be held in
    memory: a stat a file)."""
    if folder is None or not folder.is_dir():
        return ()
    return tuple(sorted((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")))


def evaluation_data(config: Config, split: str, shape: Sequence[int]) -> tuple[Any, Optional[Pipeline]]:
    """What `evaluate` scores: a split in memory as earlier releases loaded it (no transforms, no RecordIO), or a
    source through the recipe's evaluation transforms."""
    from . import data as datasets

    folder = Path(config.data_dir) if config.data_dir else None
    records = folder is not None and folder.is_dir() and (folder / RECORD_FILES[0]).exists()
    if not (config.evaluate or records or config.loader == "stream"):
        return datasets.load(config.data, split, config.data_dir, tuple(shape), config.test_fraction), None
    channels, height, width = shape
    train, test, _ = sources(config, (channels, height, width))
    source = test if split == "test" else train
    return source, Pipeline(source, config.evaluate, (height, width), config.seed, worker_count(config),
                            config.prefetch, "evaluate")


def prepare(config: Config, shape: tuple[int, int, int], size: tuple[int, int]) -> Data:
    """The run's data, its transforms tried on the first example of each split (a crop larger than the images is
    refused here, before anything is written)."""
    train, test, chosen = sources(config, shape)
    streamed = not isinstance(train, MemorySource)
    workers = worker_count(config)
    pipelines: list[Optional[Pipeline]] = []
    for source, steps, field in ((train, config.augment, "augment"), (test, config.evaluate, "evaluate")):
        if not (streamed or steps) or not len(source):
            pipelines.append(None)
            continue
        pipeline = Pipeline(source, steps, size, config.seed, workers, config.prefetch, field)
        pipeline.example(0, 0)  # a crop larger than the images: refused before anything is written
        pipelines.append(pipeline)
    if config.augment or config.evaluate:
        chosen += f"; transforms in {workers} worker process(es)"
    elif streamed:
        chosen += f" by {workers} worker process(es)"
    return Data(train, test, pipelines[0], pipelines[1], chosen)
