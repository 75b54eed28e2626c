"""Folders of images as a dataset, in the layout of Gluon's `ImageFolderDataset` (and torchvision's
`ImageFolder`, and Keras's `image_dataset_from_directory`): one sub-folder per class, named by the class.

    DIR/train/CLASS/*.png   DIR/test/CLASS/*.png      a split made by the user, or
    DIR/CLASS/*.png                                    a split made here: --test-fraction of each class held out

Images are decoded by Pillow (PNG, JPEG, BMP, GIF, WebP, TIFF), converted to the spec's channels (1: grayscale,
3: RGB) where the file's mode has one meaning in 8 bits, refused by path where it has none (`_eight_bit`), and
resized to the spec's input once, when loaded, with the bilinear resize IDX batches go through
(`data.to_input`). An image that cannot be read (corrupt, truncated, too large) is reported by its path, with
every other such image, before anything is trained. Hidden files and folders (`.DS_Store`, `.git`,
`.ipynb_checkpoints`, macOS's `._IMG.jpg`) are not data.
"""
from __future__ import annotations

import hashlib
import os
import stat
import warnings
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as onp

from ..spec.diagnostics import InputError

SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
MAX_PIXELS = 1 << 26  # 64 megapixels: a larger image (or a "decompression bomb") is refused from its header
MAX_FILE_BYTES = 1 << 28


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")


def is_image_folder(folder: Path) -> bool:
    """Whether `folder` holds class sub-folders (directly, or under train/ and test/)."""
    return any(p.is_dir() and _visible(p) for p in folder.iterdir())


def load_image_folder(folder: Path, split: str, shape: Sequence[int], test_fraction: Optional[float]) -> Any:
    """One split of an image folder as a `data.Split`: uint8 N x H x W x C at the spec's (C, H, W)."""
    from .data import Split

    channels, height, width = shape
    classes, items = _list(folder, split, test_fraction)
    if not items:
        raise InputError(f"{folder}: no {split} images ({', '.join(SUFFIXES)} files in class folders)")
    images, bad = [], []
    for path, _ in items:
        try:
            images.append(read_image(path, channels, (height, width)))
        except InputError as e:
            bad.append(str(e))
    if bad:
        more = f"\n  (and {len(bad) - 5} more)" if len(bad) > 5 else ""
        raise InputError(f"{len(bad)} of {len(items)} images cannot be read:\n  " + "\n  ".join(bad[:5]) + more)
    return Split(onp.stack(images), onp.array([label for _, label in items], onp.int32),
                 f"{folder} ({split})", tuple(classes), tuple(str(p.relative_to(folder)) for p, _ in items))


def _list(folder: Path, split: str, test_fraction: Optional[float]) -> tuple[list[str], list[tuple[Path, int]]]:
    """The class names and the (file, label) pairs of a split."""
    halves = [name for name in ("train", "test") if (folder / name).is_dir()]
    if halves == ["train", "test"]:
        if test_fraction is not None:
            raise InputError(f"{folder}: has train/ and test/ already; --test-fraction is for a folder of "
                             "class folders only")
        classes = _classes(folder / "train")
        named = _classes(folder / split)
        unknown = sorted(set(named) - set(classes))
        if unknown:
            raise InputError(f"{folder / split}: class folder(s) {', '.join(unknown)} are not in {folder / 'train'}")
        return classes, [(path, classes.index(name)) for name in named for path in _files(folder / split / name)]
    if halves:
        raise InputError(f"{folder}: has {halves[0]}/ but no {'test' if halves == ['train'] else 'train'}/; make "
                         "both, or put the class folders directly in it and use --test-fraction")
    if test_fraction is None:
        raise InputError(f"{folder}: a folder of class folders without train/ and test/; hold out a fraction of "
                         "each class for testing with --test-fraction 0.2, or make train/ and test/")
    classes, items = _classes(folder), []
    for label, name in enumerate(classes):
        files = _files(folder / name)
        held = set(_held_out(files, folder, test_fraction))
        items += [(path, label) for path in files if (path in held) == (split == "test")]
    return classes, items


def _classes(folder: Path) -> list[str]:
    names = sorted(p.name for p in folder.iterdir() if p.is_dir() and _visible(p))
    if not names:
        raise InputError(f"{folder}: no class folders")
    return names


def _files(folder: Path) -> list[Path]:
    """A class folder's images, sorted by name: files with an image suffix (any case); sub-folders, hidden files
    and other files (README.txt) are not images."""
    return sorted(p for p in folder.iterdir() if _visible(p) and p.suffix.lower() in SUFFIXES and not p.is_dir())


def _held_out(files: list[Path], folder: Path, fraction: float) -> list[Path]:
    """The test images of one class: a `fraction` of them (at least one, and never all, of two or more), those
    first by a hash of their path in the folder, so adding an image moves at most one other between the splits."""
    def key(path: Path) -> bytes:
        return hashlib.sha256(os.fsencode(path.relative_to(folder).as_posix())).digest()

    count = min(max(round(fraction * len(files)), 1), len(files) - 1) if len(files) > 1 else 0
    return sorted(files, key=key)[:count]


def read_image(path: Path, channels: int, size: tuple[int, int]) -> onp.ndarray:
    """One image file as uint8 H x W x C at `size` (height, width) with `channels` 1 or 3."""
    from mxnet import np, npx
    from PIL import Image, UnidentifiedImageError

    if channels not in (1, 3):
        raise InputError(f"images give 1 (grayscale) or 3 (RGB) channels; the spec takes {channels}")
    try:
        info = os.stat(path)
    except OSError as e:
        raise InputError(f"{path}: cannot read it ({e.strerror or e})") from None
    if not stat.S_ISREG(info.st_mode):  # a FIFO named x.png would block, /dev/zero never end
        raise InputError(f"{path}: not a regular file")
    if info.st_size > MAX_FILE_BYTES:
        raise InputError(f"{path}: larger than {MAX_FILE_BYTES >> 20} MiB")
    count = 0
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's warnings (a large image, odd metadata): refused below, or moot
            with Image.open(path) as image:  # reads the header only
                count = image.width * image.height
                if count <= MAX_PIXELS:
                    image.load()  # raises on a truncated or corrupt file (Pillow does not make up missing pixels)
                    pixels = _eight_bit(image, channels)
    except UnidentifiedImageError:
        raise InputError(f"{path}: not an image (no format Pillow reads)") from None
    except InputError as e:  # a mode refused by `_eight_bit`
        raise InputError(f"{path}: {e}") from None
    except Image.DecompressionBombError as e:  # Pillow's own limit, beyond archspec's
        raise InputError(f"{path}: more pixels than archspec decodes ({MAX_PIXELS:,}): {e}") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise InputError(f"{path}: corrupt or truncated image ({e})") from None
    if count > MAX_PIXELS:
        raise InputError(f"{path}: {count:,} pixels is more than archspec decodes ({MAX_PIXELS:,})")
    if pixels.shape[:2] != size:
        pixels = npx.image.resize(np.array(pixels), (size[1], size[0]), interp=1).asnumpy()  # as data.to_input
    return pixels


#: modes Pillow converts to L and RGB by a defined formula: bilevel, gray, palette, RGB, CMYK (255 - C, ... times
#: 1 - K), YCbCr (JPEG's); alpha dropped
CONVERTED = frozenset({"1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr"})
SIXTEEN_BITS = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})  # unsigned 16-bit gray: 65535 is white
#: modes whose pixels have no one meaning in 8 bits, each with why: refused, never guessed
REFUSED = {
    "F": "32-bit floating-point pixels, whose scale (0..1, 0..255, or any) the file does not record",
    "I": "32-bit integer (or signed 16-bit) pixels, whose scale to 8 bits the file does not record",
    "I;16S": "signed 16-bit pixels, whose scale to 8 bits the file does not record",
    "LAB": "CIE L*a*b* colour, which needs colour management to become RGB",
    "HSV": "HSV colour, which archspec does not convert",
}


def _eight_bit(image: Any, channels: int) -> onp.ndarray:
    """uint8 H x W x C: unsigned 16-bit gray scaled to 8 bits (the high byte), the modes of `CONVERTED` converted
    by Pillow; any other mode (float, 32-bit or signed integers, L*a*b*, ...) refused as `InputError`, so that no
    image is decoded to a guess (a float TIFF became all zeros)."""
    mode = image.mode
    if mode in SIXTEEN_BITS:
        gray = (onp.asarray(image).astype(onp.uint16) >> 8).astype(onp.uint8)
        return onp.repeat(gray[..., None], channels, axis=2)
    if mode not in CONVERTED:
        why = REFUSED.get(mode, "a mode archspec does not convert")
        raise InputError(f"mode {mode}: {why}; save it as 8-bit (or unsigned 16-bit gray) PNG or TIFF")
    converted = image.convert("L" if channels == 1 else "RGB")
    return onp.asarray(converted, onp.uint8).reshape(converted.height, converted.width, channels)
