"""Datasets for training: Fashion-MNIST as the D2L book loads it (`gluon.data.vision.FashionMNIST`), any
dataset in its IDX format from a local folder, or a folder of images in class folders (`images.py`). Images
stay uint8 in memory; batches are resized and scaled on the device with the same operators as Gluon's
`transforms.Resize` and `ToTensor`."""
from __future__ import annotations

import gzip
import hashlib
import math
import os
import struct
import zlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import numpy as onp

from ..spec.diagnostics import InputError

# The four files of Fashion-MNIST (and MNIST), optionally gzipped.
IDX_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
FASHION_MNIST_LABELS = ("t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
                        "ankle boot")
_IDX_TYPES: dict[int, Any] = {0x08: onp.uint8, 0x09: onp.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
MAX_IDX_BYTES = 1 << 31


@dataclass(frozen=True)
class Split:
    """Images as uint8 N x H x W x C (Gluon's layout for vision datasets) and integer labels."""

    images: onp.ndarray
    labels: onp.ndarray
    source: str = ""  # where the labels come from, for messages
    classes: tuple[str, ...] = ()  # the class names, when the data has them (an image folder's class folders)
    names: tuple[str, ...] = ()  # each example's file, when it has one

    def __len__(self) -> int:
        return len(self.labels)

    def check(self, classes: int) -> None:
        """Refuse a split that cannot train a network of `classes` outputs: empty, or a label out of range."""
        if len(self) == 0:
            raise InputError(f"{self.source}: no examples")
        if min(self.images.shape[1:3]) < 1:
            raise InputError(f"{self.source}: images of {self.images.shape[1]}x{self.images.shape[2]} pixels")
        bad = onp.flatnonzero((self.labels < 0) | (self.labels >= classes))
        if len(bad):
            raise InputError(f"{self.source}: label {int(self.labels[bad[0]])} (example {int(bad[0])}, and "
                             f"{len(bad) - 1} more) is outside 0..{classes - 1}; the network has {classes} outputs")

    def relabel(self, classes: Sequence[str], source: str) -> "Split":
        """The split with labels numbered as in `classes` (a model's class names, kept from its training data),
        so that a test folder whose class folders differ from the training folder's is scored correctly."""
        unknown = sorted(set(self.classes) - set(classes))
        if unknown:
            raise InputError(f"{self.source}: class folder(s) {', '.join(unknown)} are not classes of the model "
                             f"({source})")
        numbers = onp.array([list(classes).index(name) for name in self.classes], onp.int32)
        return replace(self, labels=numbers[self.labels], classes=tuple(classes))

    def fingerprint(self) -> dict[str, Any]:
        """What a resumed run must find again: the examples themselves (their shapes and SHA-256), wherever the
        files are and however they are compressed."""
        def digest(array: onp.ndarray) -> str:
            return hashlib.sha256(str(array.shape).encode() + onp.ascontiguousarray(array).tobytes()).hexdigest()

        return {"examples": len(self), "images": digest(self.images), "labels": digest(self.labels),
                **({"classes": list(self.classes)} if self.classes else {})}


def read_idx(path: str | os.PathLike) -> onp.ndarray:
    """An IDX file (LeCun's MNIST format), plain or gzipped, as a numpy array. Refuses anything else."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    if path.exists() and not path.is_file():  # a FIFO or a device would block or never end
        raise InputError(f"{path}: not a regular file; a dataset is IDX files")
    try:
        with opener(path, "rb") as f:
            header = f.read(4)
            if len(header) != 4 or header[:2] != b"\0\0" or header[2] not in _IDX_TYPES or not 1 <= header[3] <= 4:
                raise InputError(f"{path}: not an IDX file (bad magic number {header.hex() or 'empty'})")
            dims = struct.unpack(f">{header[3]}I", f.read(4 * header[3]))
            dtype = onp.dtype(_IDX_TYPES[header[2]])
            size = math.prod(dims) * dtype.itemsize  # Python integers: dimensions cannot overflow
            if size > MAX_IDX_BYTES:
                raise InputError(f"{path}: {size:,} bytes of data is more than archspec reads ({MAX_IDX_BYTES:,})")
            data = f.read(size)
    except (OSError, EOFError, struct.error, zlib.error) as e:  # gzip's errors: OSError, EOFError or zlib.error
        raise InputError(f"{path}: cannot read IDX data: {e}") from None
    if len(data) != size:
        raise InputError(f"{path}: truncated: dimensions {dims} need {size:,} bytes, found {len(data):,}")
    return onp.frombuffer(data, dtype).reshape(dims).astype(dtype.newbyteorder("="))


def write_idx(path: str | os.PathLike, array: onp.ndarray) -> None:
    """Write an array as an IDX file (gzipped if the name ends in .gz): uint8 images or labels."""
    array = onp.ascontiguousarray(array)
    code = {onp.dtype(onp.uint8): 0x08, onp.dtype(onp.int32): 0x0C}[array.dtype]
    payload = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload += array.astype(array.dtype.newbyteorder(">")).tobytes()
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(payload)


def _find(folder: Path, name: str) -> Path:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise InputError(f"{folder}: no {name} (or {name}.gz); a data folder holds IDX files ("
                     + ", ".join(n for pair in IDX_FILES.values() for n in pair)
                     + "), or class folders of images")


def load_idx_folder(folder: str | os.PathLike, split: str) -> Split:
    """One split ("train" or "test") of an IDX dataset folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: no such data directory")
    images_file, labels_file = (_find(folder, n) for n in IDX_FILES[split])
    images, labels = read_idx(images_file), read_idx(labels_file)
    if images.ndim not in (3, 4) or images.dtype != onp.uint8:
        raise InputError(f"{images_file}: expected uint8 images N x H x W (x C), got {images.dtype} {images.shape}")
    if labels.ndim != 1 or len(labels) != len(images):
        raise InputError(f"{labels_file}: expected {len(images)} labels for {len(images)} images, got shape "
                         f"{labels.shape}")
    return Split(images if images.ndim == 4 else images[..., None], labels.astype(onp.int32), str(labels_file))


def load_fashion_mnist(split: str, root: str | os.PathLike | None = None) -> Split:
    """Fashion-MNIST as D2L loads it: `gluon.data.vision.FashionMNIST`, downloaded once into `root`
    (default `~/.mxnet/datasets/fashion-mnist`)."""
    from mxnet.gluon.data.vision import FashionMNIST

    from ..gluon.compat import dataset_arrays

    kwargs = {"root": str(root)} if root else {}
    try:
        dataset = FashionMNIST(train=split == "train", **kwargs)
    except Exception as e:  # no network, a proxy, a half-downloaded file
        raise InputError(f"could not load Fashion-MNIST ({type(e).__name__}: {str(e).splitlines()[0][:200]}); "
                         "download the four IDX files yourself and pass their folder with --data-dir") from None
    images, labels = dataset_arrays(dataset)
    images = images.asnumpy() if hasattr(images, "asnumpy") else onp.asarray(images)
    return Split(images.astype(onp.uint8), onp.asarray(labels).astype(onp.int32), f"Fashion-MNIST ({split})",
                 FASHION_MNIST_LABELS)


def load(data: str, split: str, data_dir: str | os.PathLike | None = None, shape: Optional[tuple[int, ...]] = None,
         test_fraction: Optional[float] = None) -> Split:
    """`data` names the dataset (`fashion-mnist`); `data_dir` is a folder to read instead: IDX files, or class
    folders of images, which are made `shape` (the spec's C, H, W) as they are read."""
    from .images import is_image_folder, load_image_folder

    if data != "fashion-mnist":
        raise InputError(f"unknown dataset {data!r}: archspec knows fashion-mnist, and reads any dataset in its "
                         "IDX format, or a folder of class folders of images, with --data-dir")
    if not data_dir:
        return load_fashion_mnist(split)
    folder = Path(data_dir)
    idx = folder.is_dir() and any((folder / name).exists() or (folder / f"{name}.gz").exists()
                                  for pair in IDX_FILES.values() for name in pair)
    if folder.is_dir() and not idx and is_image_folder(folder):
        if shape is None:
            raise ValueError("an image folder needs the shape images are made")
        return load_image_folder(folder, split, shape, test_fraction)
    if test_fraction is not None:
        raise InputError(f"{folder}: --test-fraction is for a folder of class folders of images")
    return load_idx_folder(folder, split)


def batches(split: Split, batch_size: int, order: onp.ndarray,
            start: int = 0) -> Iterator[tuple[onp.ndarray, onp.ndarray]]:
    """(images, labels) numpy batches in `order`, from batch number `start` on; the last may be short."""
    for first in range(start * batch_size, len(order), batch_size):
        index = order[first:first + batch_size]
        yield split.images[index], split.labels[index]


def to_input(images: onp.ndarray, size: Optional[tuple[int, int]], ctx: Any) -> Any:
    """uint8 N x H x W x C numpy -> float32 N x C x H' x W' in [0, 1] on `ctx`, as D2L's
    `transforms.Resize(size)` + `transforms.ToTensor()` do per image, but for a whole batch at once."""
    from mxnet import np, npx

    x = np.array(images, dtype="uint8", ctx=ctx)
    if size is not None and tuple(images.shape[1:3]) != tuple(size):
        x = npx.image.resize(x, (size[1], size[0]), interp=1)  # (width, height), bilinear
    return npx.image.to_tensor(x)
