"""Files that appear whole or not at all: written beside their destination, flushed to disk, then renamed over
it (and the rename flushed too), so a crash or a power cut leaves the old file or the new one. A process killed
mid-write leaves a `.archspec-*` temporary file, which `remove_leftovers` clears on the next run."""
from __future__ import annotations

import hashlib
import os
import tempfile
from typing import Callable, Iterable, Sequence

from .spec.diagnostics import InputError


def target(path: str | os.PathLike, inputs: Iterable[str | os.PathLike] = ()) -> str:
    """Where a file written to `path` goes: through a symbolic link to its file. Refused (an `InputError`, before
    anything is written) when `path` names no file (see `named`), is a folder or something else that is not a
    regular file (renaming over /dev/null would replace the device), or is one of `inputs`, the files and folders
    the command reads: the same file by inode, through links too, or a file inside an input folder."""
    named(path)
    real = os.path.realpath(path)
    if os.path.isdir(real):
        raise InputError(f"{path}: is a folder; name a file to write")
    if os.path.exists(real) and not os.path.isfile(real):
        raise InputError(f"{path}: not a regular file; archspec writes only files")
    if os.path.exists(real):
        _not_an_input(path, real, inputs)
    return real


def named(path: str | os.PathLike, option: str = "", folder: bool = False) -> str:
    """`path` as typed, when it names a file (or, with `folder`, a folder) to write: refused when empty or blank,
    and a file's when its last part is empty, `.` or `..` (`-o ''` would write the hidden files `.-symbol.json`
    and `.-0000.params`, `-o out/` the file `out-symbol.json` beside the folder)."""
    text = os.fspath(path)
    what = f"{option} {text!r}" if option else repr(text)
    if not text.strip():
        raise InputError(f"{option or 'output'}: an empty path names nothing to write; name a "
                         + ("folder" if folder else "file"))
    if not folder and (os.path.basename(text) in ("", ".", "..") or text.endswith(("/", os.sep))):
        raise InputError(f"{what}: ends in a folder, not a file name; name the file to write")
    return text


def plain_name(text: str, what: str) -> str:
    """A name that becomes part of a file name (a study, a spec's name in a sampled file): a name, not a path."""
    if not text or text.strip() != text or text.startswith(".") or any(c in text for c in "/\\\0") \
            or any(ord(c) < 32 for c in text):
        raise InputError(f"{what} {text!r}: a name, not a path (it becomes part of file and folder names): no "
                         "`/`, `\\`, control characters, leading `.` or surrounding spaces")
    if len(text.encode(errors="surrogateescape")) > 200:  # room for what a file name adds to it
        raise InputError(f"{what} {text[:20]!r}...: longer than 200 bytes; a file name holds 255")
    return text


def folders_to_make(path: str | os.PathLike, option: str) -> list[str]:
    """The folders that writing into the folder `path` would create, outermost first, once it is known that they
    can be: the nearest one that exists is a folder this process may write in. Creates nothing."""
    missing, folder = [], os.path.abspath(path)
    while not os.path.lexists(folder):
        if len(os.fsencode(os.path.basename(folder))) > 255:
            raise InputError(f"{option} {path}: a folder name longer than 255 bytes")
        missing.append(folder)
        folder = os.path.dirname(folder)
    if not os.path.isdir(folder):
        raise InputError(f"{option} {path}: {folder} is not a folder")
    if missing and not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(f"{option} {path}: cannot create it in {folder} (permission denied)")
    return missing[::-1]


def _not_an_input(path: str | os.PathLike, real: str, inputs: Iterable[str | os.PathLike]) -> None:
    status = os.stat(real)
    for given in inputs:
        if not os.path.exists(given):
            continue
        if os.path.samestat(status, os.stat(given)):
            raise InputError(f"{path}: is {given}, which this command reads; writing would replace it. Name "
                             "another file")
        if os.path.isdir(given) and os.path.commonpath([real, os.path.realpath(given)]) == os.path.realpath(given):
            raise InputError(f"{path}: is a file inside {given}, which this command reads; name a file elsewhere")


def save_atomically(path: str | os.PathLike, save: Callable[[str], None],
                    inputs: Iterable[str | os.PathLike] = ()) -> None:
    """Call `save(temporary_path)` (e.g. `net.save_parameters`), then rename the result to `path` (or, when
    `path` is a symbolic link, to the file it points at). `path` is checked by `target` against `inputs`."""
    path = target(path, inputs)
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


def write_atomically(path: str | os.PathLike, data: bytes, inputs: Iterable[str | os.PathLike] = ()) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)

    save_atomically(path, write, inputs)


def sample_folder(out: str, name: str, n: int) -> list[str]:
    """The folders to create for `archspec sample --out` (outermost first), once every file it will write is known to be
    new: `out` must be a new folder or an empty one, so no file is overwritten (the space's own included) and none
    is left from an earlier sample. Creates nothing."""
    longest = f"{name}-{n - 1:04d}.yaml"
    if len(os.fsencode(longest)) > 255:
        raise InputError(f"the spec's name is {len(name):,} characters long: its files ({name[:20]}...-0000.yaml) "
                         "would have names longer than 255 bytes; shorten it with --set name=SHORT")
    if os.path.islink(out) and not os.path.exists(out):
        raise InputError(f"--out {out}: a symbolic link to nothing; name a new or empty folder")
    if os.path.lexists(out):
        if not os.path.isdir(out):
            raise InputError(f"--out {out}: not a folder; name a new or empty folder")
        try:
            entries = os.listdir(out)
        except OSError as e:
            raise InputError(f"--out {out}: cannot read it ({e.strerror or e})") from None
        if entries:
            raise InputError(f"--out {out}: the folder is not empty ({len(entries):,} entries); sampled networks go "
                             "to a new or empty folder, so that no file is overwritten or left from an earlier sample")
        if not os.access(out, os.W_OK | os.X_OK):
            raise InputError(f"--out {out}: cannot write there (permission denied)")
        return []
    missing = folders_to_make(out, "--out")
    if len(os.fsencode(os.path.join(os.path.abspath(out), longest))) >= 4096:
        raise InputError(f"--out {out}: the files' paths would be longer than 4,095 bytes")
    return missing


def remove_sampled(out: str, name: str, written: int, created: Sequence[str]) -> None:
    """Undo a `sample --out` that failed: its files (the one being written when it stopped included, and its
    temporary file; the folder was new or empty, so they are all ours), then the folders it created (innermost
    first)."""
    for i in range(written + 1):
        path = os.path.join(out, f"{name}-{i:04d}.yaml")
        if os.path.isfile(path):
            os.unlink(path)
    remove_leftovers(out)
    for folder in reversed(created):
        try:
            os.rmdir(folder)
        except OSError:
            pass
