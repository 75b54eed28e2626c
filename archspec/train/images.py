"""Folders of images as a dataset, in the layout Gluon's `ImageFolderDataset` reads (and torchvision's
`ImageFolder`, and Keras's `image_dataset_from_directory`): one sub-folder per class, named by the class.

    DIR/train/CLASS/*.png   DIR/test/CLASS/*.png      a split made by the user, or
    DIR/CLASS/*.png                                    a split made here: --test-fraction of each class held out

Images are decoded by MXNet (OpenCV: PNG and JPEG), converted to the spec's channels (1: grayscale, 3: RGB), and
resized to the spec's input once, when loaded, with the bilinear resize IDX batches go through. An image that
cannot be read is reported by its path, with every other such image, before anything is trained.
"""
from __future__ import annotations

import hashlib
import os
import stat
import struct
import warnings
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as onp

from ..spec.diagnostics import InputError

SUFFIXES = (".jpg", ".jpeg", ".png")  # what ImageFolderDataset (and OpenCV, in every build) reads
MAX_PIXELS = 1 << 26  # 64 megapixels: a larger image (or a "decompression bomb") is refused from its header
MAX_FILE_BYTES = 1 << 28


def is_image_folder(folder: Path) -> bool:
    """Whether `folder` holds class sub-folders (directly, or under train/ and test/)."""
    return any(p.is_dir() and not p.name.startswith(".") for p in folder.iterdir())


def load_image_folder(folder: Path, split: str, shape: Sequence[int], test_fraction: Optional[float]) -> Any:
    """One split of an image folder as a `data.Split`: uint8 N x H x W x C at the spec's (C, H, W)."""
    from .data import Split

    channels, height, width = shape
    if channels not in (1, 3):
        raise InputError(f"{folder}: images give 1 (grayscale) or 3 (RGB) channels; the spec takes {channels}")
    classes, items = _list(folder, split, test_fraction)
    if not items:
        raise InputError(f"{folder}: no {split} images (.jpg, .jpeg or .png files in class folders)")
    images, bad = [], []
    for path, _ in items:
        try:
            images.append(read_image(path, channels, (height, width)))
        except InputError as e:
            bad.append(str(e))
    if bad:
        more = f" (and {len(bad) - 5} more)" if len(bad) > 5 else ""
        raise InputError(f"{len(bad)} of {len(items)} images cannot be read{more}:\n  " + "\n  ".join(bad[:5]))
    return Split(onp.stack(images), onp.array([label for _, label in items], onp.int32),
                 f"{folder} ({split})", tuple(classes), tuple(str(p.relative_to(folder)) for p, _ in items))


def _list(folder: Path, split: str, test_fraction: Optional[float]) -> tuple[list[str], list[tuple[Path, int]]]:
    """The class names and the (file, label) pairs of a split, as ImageFolderDataset lists them."""
    if (folder / "train").is_dir() and (folder / "test").is_dir():
        if test_fraction is not None:
            raise InputError(f"{folder}: has train/ and test/ already; --test-fraction is for a folder of "
                             "class folders only")
        classes, _ = _classes(folder / "train")
        named, items = _classes(folder / split)
        unknown = sorted(set(named) - set(classes))
        if unknown:
            raise InputError(f"{folder / split}: class folder(s) {', '.join(unknown)} are not in {folder / 'train'}")
        return classes, [(path, classes.index(named[label])) for path, label in items]
    if test_fraction is None:
        raise InputError(f"{folder}: a folder of class folders without train/ and test/; hold out a fraction of "
                         "each class for testing with --test-fraction 0.2, or make train/ and test/")
    classes, items = _classes(folder)
    test = split == "test"
    return classes, [(path, label) for path, label in items if _held_out(path, folder, test_fraction) == test]


def _classes(folder: Path) -> tuple[list[str], list[tuple[Path, int]]]:
    from mxnet.gluon.data.vision import ImageFolderDataset

    with warnings.catch_warnings():  # it warns of every file it skips (README.txt, .DS_Store): not an error
        warnings.simplefilter("ignore")
        dataset = ImageFolderDataset(str(folder))
    if not dataset.synsets:
        raise InputError(f"{folder}: no class folders")
    return list(dataset.synsets), [(Path(path), label) for path, label in dataset.items]


def _held_out(path: Path, folder: Path, fraction: float) -> bool:
    """Whether an image is in the test split: decided by a hash of its path in the folder, so adding or removing
    images moves no other image between the splits."""
    digest = hashlib.sha256(path.relative_to(folder).as_posix().encode()).digest()
    return int.from_bytes(digest[:8], "big") < fraction * 2**64


def read_image(path: Path, channels: int, size: tuple[int, int]) -> onp.ndarray:
    """One image file as uint8 H x W x C at `size` (height, width) with `channels` 1 or 3."""
    from mxnet import image, npx
    from mxnet.base import MXNetError

    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):  # a FIFO named x.png would block, /dev/zero never end
            raise InputError(f"{path}: not a regular file")
        if info.st_size > MAX_FILE_BYTES:
            raise InputError(f"{path}: larger than {MAX_FILE_BYTES >> 20} MiB")
        data = Path(path).read_bytes()
    except OSError as e:
        raise InputError(f"{path}: cannot read it ({e.strerror or e})") from None
    pixels = _header_pixels(data)
    if pixels is None:
        raise InputError(f"{path}: not a PNG or JPEG image")
    if pixels > MAX_PIXELS:
        raise InputError(f"{path}: {pixels:,} pixels is more than archspec decodes ({MAX_PIXELS:,})")
    try:  # MXNet runs operators asynchronously: a decoding error surfaces when the result is read
        decoded = image.imdecode(data, flag=1 if channels == 3 else 0).as_np_ndarray()
        if tuple(decoded.shape[:2]) != size:
            decoded = npx.image.resize(decoded, (size[1], size[0]), interp=1)  # as data.to_input resizes batches
        return decoded.asnumpy()
    except MXNetError:
        raise InputError(f"{path}: corrupt or truncated image (the decoder refused it)") from None


def _header_pixels(data: bytes) -> Optional[int]:
    """Width x height from a PNG's or JPEG's header, before anything is decoded; None if it is neither."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
        width, height = struct.unpack(">II", data[16:24])
        return width * height
    if data[:2] != b"\xff\xd8":
        return None
    at = 2
    while at + 9 < len(data):  # JPEG segments: FF marker, length; the frame header (SOFn) has the size
        if data[at] != 0xFF:
            break
        marker, length = data[at + 1], struct.unpack(">H", data[at + 2:at + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[at + 5:at + 9])
            return width * height
        at += 2 + length
    return 0  # no frame header: let the decoder say what is wrong
