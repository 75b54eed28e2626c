"""MXNet's RecordIO, read and written in plain Python: `.rec` (records of a label header and an encoded image, as
`im2rec` writes them and `mx.io.ImageRecordIter` reads them) and its `.idx` (one `key<TAB>offset` line a record),
plus a `.json` beside them that keeps the class names. Plain Python so that decoding worker processes need no
MXNet, and so that a truncated file or an index for another file is refused with its name, not an abort.

Record layout (dmlc-core's recordio.h, MXNet's recordio.py): uint32 magic 0xced7230a, uint32 length (low 29 bits;
the top 3 a continuation flag, always 0 here), the payload, zero-padded to 4 bytes. Payload: MXNet's IRHeader
(uint32 flag, float32 label, uint64 id, uint64 id2) and the image file's bytes.
"""
from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as onp

from ..files import named, save_atomically, target, write_atomically
from ..spec.diagnostics import InputError
from . import failpoints

MAGIC = 0xCED7230A
_HEAD = struct.Struct("<II")
_IR = struct.Struct("<IfQQ")
MAX_RECORD = (1 << 29) - 1


def encode(label: int, key: int, payload: bytes) -> bytes:
    """One record: header, IRHeader (flag 0: one label) and the image file's bytes, padded to 4 bytes."""
    body = _IR.pack(0, float(label), key, 0) + payload
    if len(body) > MAX_RECORD:
        raise InputError(f"record {key}: {len(body):,} bytes is more than a RecordIO record holds")
    return _HEAD.pack(MAGIC, len(body)) + body + b"\0" * (-len(body) % 4)


def write(path: Path, items: Sequence[tuple[Path, int]], classes: Sequence[str], source: str) -> None:
    """Write `path` (.rec) from (image file, label) pairs, the files' bytes as they are (no re-encoding), with its
    .idx and its .json (the class names). The .rec appears last, renamed into place once its .idx and .json are
    written (an earlier .rec at `path` is removed first): a process killed while packing leaves no .rec, never
    one beside another file's index or class names."""
    path.unlink(missing_ok=True)

    def save(tmp: str) -> None:
        offsets, offset = [], 0
        with open(tmp, "wb") as f:
            for key, (image, label) in enumerate(items):
                record = encode(label, key, image.read_bytes())
                offsets.append(offset)
                f.write(record)
                offset += len(record)
                failpoints.reached("record", key)
        write_atomically(path.with_suffix(".idx"), "".join(f"{k}\t{o}\n" for k, o in enumerate(offsets)).encode())
        write_atomically(path.with_suffix(".json"), json.dumps({"classes": list(classes), "records": len(items),
                                                                "source": source}, indent=1).encode())

    save_atomically(path, save)


SUFFIXES = (".rec", ".idx", ".json")  # the files of one pack


def destinations(folder: Path, output: Union[str, Path]) -> list[Path]:
    """The .rec files `pack` writes for `-o output` (OUT.rec, or OUT/train.rec and OUT/test.rec; each with its .idx
    and .json), once `output` passes the output-path rule (`files.named`) and pack's own: not a hidden name (`-o
    .rec` would make a hidden folder), not an existing file but a .rec, and nowhere inside the folder being packed,
    where the next pack, or training, would read it as data. Creates nothing."""
    text, out = str(output), Path(output)  # Path("") is ".": the empty name is seen before it becomes one
    named(text, "-o", folder=out.suffix != ".rec")  # and `-o data.rec/` is a file's name ending in a folder
    if out.name.startswith("."):
        raise InputError(f"-o {text}: a hidden name; name the file (data.rec) or the folder (data)")
    if out.suffix != ".rec" and out.exists() and not out.is_dir():
        raise InputError(f"-o {text}: an existing file that is not a .rec; -o names a .rec file or a folder")
    packed = os.path.realpath(folder)
    if os.path.commonpath([os.path.realpath(out), packed]) == packed:
        raise InputError(f"-o {text}: inside {folder}, the folder being packed, where the RecordIO files would be "
                         "read as its data next time; write them elsewhere")
    written = [out] if out.suffix == ".rec" else [out / "train.rec", out / "test.rec"]
    for path in written:  # a folder or a device in the way, or a file of the folder (through a link too)
        for suffix in SUFFIXES:
            target(path.with_suffix(suffix), [folder])
    return written


def pack(folder: Path, output: Union[str, Path], test_fraction: Optional[float] = None) -> list[Path]:
    """`archspec pack`: class folders of images as RecordIO. `output` ending in .rec: one file from FOLDER/CLASS/*;
    else a folder of train.rec and test.rec (from FOLDER/train and FOLDER/test, or --test-fraction held out), the
    layout `--data-dir` reads. Every image is decoded once first: a bad one is refused by its path, with nothing
    written. Returns the .rec files written."""
    from .images import _classes, _files, _list
    from .stream import decode

    if not folder.is_dir():
        raise InputError(f"{folder}: no such folder of class folders")
    written = destinations(folder, output)
    if len(written) == 1:
        if test_fraction is not None:
            raise InputError("--test-fraction: pack into a folder (-o DIR) to write train.rec and test.rec")
        classes = _classes(folder)
        splits = {written[0]: [(p, label) for label, name in enumerate(classes) for p in _files(folder / name)]}
    else:
        listed = [_list(folder, split, test_fraction) for split in ("train", "test")]
        classes = listed[0][0]
        splits = {path: items for path, (_, items) in zip(written, listed)}
    bad = []
    for items in splits.values():
        for image, _ in items:
            try:
                decode(image.read_bytes(), str(image), 3)
            except (InputError, OSError) as e:
                bad.append(str(e))
    if bad:
        more = f"\n  (and {len(bad) - 5} more)" if len(bad) > 5 else ""
        raise InputError(f"{len(bad)} images cannot be read; nothing written:\n  " + "\n  ".join(bad[:5]) + more)
    if not all(splits.values()):
        raise InputError(f"{folder}: no images to pack")
    images = [image for items in splits.values() for image, _ in items]
    for path in written:  # nor an image the folder links to from elsewhere
        for suffix in SUFFIXES:
            target(path.with_suffix(suffix), images)
    for path, items in splits.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        write(path, items, classes, str(folder))
    return list(splits)


class RecordFile:
    """An indexed .rec, checked when opened: every index entry must point at a record header inside the file,
    and the last record must end inside it. Holds the offsets and labels (16 bytes an image), never the images.
    Reopens its file in a forked worker process (a file position is not shared across processes)."""

    def __init__(self, path: Path):
        self.path = path
        index = path.with_suffix(".idx")
        if not path.is_file():
            raise InputError(f"{path}: no such RecordIO file")
        if not index.is_file():
            raise InputError(f"{index}: missing; a .rec is read through its index (archspec pack writes both)")
        self.size = path.stat().st_size
        self.offsets = self._read_index(index)
        self._fd: Optional[int] = None
        self._pid = -1
        self.labels = onp.fromiter((self._label(k) for k in range(len(self.offsets))), onp.int32, len(self.offsets))
        self.classes = self._read_classes(path.with_suffix(".json"))

    def _read_classes(self, meta: Path) -> tuple[str, ...]:
        """The class names `pack` kept beside the .rec (none for a file from `im2rec`)."""
        if not meta.is_file():
            return ()
        try:
            kept = json.loads(meta.read_text())
            names = kept["classes"]
            if not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
                raise TypeError
        except (OSError, ValueError, KeyError, TypeError):
            raise InputError(f"{meta}: not the class list archspec pack writes ({{\"classes\": [...]}})") from None
        if kept.get("records", len(self)) != len(self):  # the class names of another pack
            raise InputError(f"{meta}: does not match {self.path.name}: it was written for {kept['records']} "
                             f"records, the index lists {len(self)}; pack the data again")
        return tuple(names)

    def _read_index(self, index: Path) -> onp.ndarray:
        try:  # line by line: ImageNet's index is 1.28 M lines, and a list of them would hold ~300 MB at once
            with open(index, encoding="utf-8") as lines:
                offsets = onp.fromiter((int(offset) for _, offset in (line.split("\t") for line in lines
                                                                       if line.strip())), onp.int64)
        except (ValueError, UnicodeDecodeError):
            raise InputError(f"{index}: not a RecordIO index (lines of KEY<TAB>OFFSET)") from None
        if not len(offsets):
            raise InputError(f"{index}: no records")
        if offsets.min() < 0 or (onp.diff(offsets) <= 0).any():
            raise InputError(f"{index}: does not match {self.path.name}: its offsets are out of order; pack the "
                             "data again")
        if offsets.max() + _HEAD.size + _IR.size > self.size:
            raise InputError(f"{self.path}: truncated: its index lists {len(offsets):,} records up to byte "
                             f"{int(offsets.max()):,}, the file has {self.size:,} bytes")
        return offsets

    def _file(self) -> int:
        if self._fd is None or self._pid != os.getpid():
            self._fd, self._pid = os.open(self.path, os.O_RDONLY), os.getpid()
        return self._fd

    def _record(self, k: int, header_only: bool = False) -> bytes:
        offset = int(self.offsets[k])
        magic, length = _HEAD.unpack(os.pread(self._file(), _HEAD.size, offset))
        length &= MAX_RECORD
        if magic != MAGIC:
            raise InputError(f"{self.path.with_suffix('.idx')}: does not match {self.path.name}: record {k} at "
                             f"byte {offset:,} is not a record header; pack the data again")
        if offset + _HEAD.size + length > self.size:
            raise InputError(f"{self.path}: truncated: record {k} needs {offset + _HEAD.size + length:,} bytes, "
                             f"the file has {self.size:,}")
        want = min(length, _IR.size) if header_only else length
        return os.pread(self._file(), want, offset + _HEAD.size)

    def _label(self, k: int) -> int:
        """Record `k`'s class number, read from its header (every record is checked when the file is opened)."""
        head = self._record(k, header_only=True)
        if len(head) < _IR.size:
            raise InputError(f"{self.path}: record {k} is too short for a label header")
        flag, label, _, _ = _IR.unpack(head[:_IR.size])
        if flag != 0 or label != int(label) or label < 0:
            raise InputError(f"{self.path}: record {k} has {'a label array' if flag else f'label {label}'}; "
                             "archspec reads one class number a record")
        return int(label)

    def __len__(self) -> int:
        return len(self.offsets)

    def payload(self, k: int) -> bytes:
        """The image file's bytes of record `k`."""
        return self._record(k)[_IR.size:]

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_fd": None, "_pid": -1}
