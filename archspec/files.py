"""Files that appear whole or not at all: written beside their destination, flushed to disk, then renamed over
it (and the rename flushed too), so a crash or a power cut leaves the old file or the new one. A process killed
mid-write leaves a `.archspec-*` temporary file, which `remove_leftovers` clears on the next run."""
from __future__ import annotations

import hashlib
import os
import tempfile
from typing import Callable

from .spec.diagnostics import InputError


def target(path: str | os.PathLike) -> str:
    """Where a file written to `path` goes: through a symbolic link to its file; refused when `path` is a folder
    or something else that is not a regular file (renaming over /dev/null would replace the device)."""
    real = os.path.realpath(path)
    if os.path.isdir(real):
        raise InputError(f"{path}: is a folder; name a file to write")
    if os.path.exists(real) and not os.path.isfile(real):
        raise InputError(f"{path}: not a regular file; archspec writes only files")
    return real


def save_atomically(path: str | os.PathLike, save: Callable[[str], None]) -> None:
    """Call `save(temporary_path)` (e.g. `net.save_parameters`), then rename the result to `path` (or, when
    `path` is a symbolic link, to the file it points at)."""
    path = target(path)
    folder = os.path.dirname(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".archspec-")
    except OSError as e:
        raise InputError(f"{path}: cannot write here ({e.strerror or e})") from None
    os.close(fd)
    try:
        save(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would outlive the rename
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())  # the data is on disk before the name points at it
        os.replace(tmp, path)
        _sync_folder(folder)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _sync_folder(folder: str) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_leftovers(folder: str | os.PathLike) -> list[str]:
    """Delete the temporary files a killed process left in `folder`; returns their names."""
    names = sorted(n for n in os.listdir(folder) if n.startswith(".archspec-")) if os.path.isdir(folder) else []
    for name in names:
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            os.unlink(path)
    return names


def sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_atomically(path: str | os.PathLike, data: bytes) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)

    save_atomically(path, write)
