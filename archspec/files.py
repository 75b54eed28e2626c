"""Files that appear whole or not at all: written beside their destination, then renamed over it."""
from __future__ import annotations

import os
import tempfile
from typing import Callable


def save_atomically(path: str | os.PathLike, save: Callable[[str], None]) -> None:
    """Call `save(temporary_path)` (e.g. `net.save_parameters`), then rename the result to `path`."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".archspec-")
    os.close(fd)
    try:
        save(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would outlive the rename
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_atomically(path: str | os.PathLike, data: bytes) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)

    save_atomically(path, write)
