"""MXNet's own distributed launcher (`mxnet/tools/launch.py` + dmlc_tracker), made to run on Python 3.9+.

Shims, nothing else (`gluon.compat.patch_launcher`): `Thread.isAlive` for Python 3.9+, the tracker bound to
127.0.0.1 for local jobs, and a local process that fails making the launcher fail (it exited 0).
"""
from __future__ import annotations

import os
import runpy
import sys
import threading

import mxnet

from ..gluon.compat import patch_launcher
from .processes import worker_environment


def launcher_path() -> str:
    path = os.path.join(os.path.dirname(mxnet.__file__), "tools", "launch.py")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: this MXNet install has no tools/launch.py")
    return path


def main(argv: list[str]) -> int:
    """`archspec launch -n 2 -s 1 --launcher local -- archspec train ...`: the arguments of MXNet's launch.py."""
    local = "local" in argv[: argv.index("--") if "--" in argv else len(argv)]
    failures: list[str] = []
    workers: list[threading.Thread] = []
    patch_launcher(local, failures, workers)
    if local:  # the workers and servers share this machine's cores: their threads yield (train/processes.py)
        os.environ.update(worker_environment())
    path = launcher_path()
    args = [a for a in argv if a != "--"]
    sys.argv = [path, *args]
    try:
        runpy.run_path(path, run_name="__main__")
    except SystemExit as e:
        code = int(e.code or 0) if not isinstance(e.code, str) else 1
    else:
        code = 0
    for thread in workers:  # each returns once its worker process has exited, and has then noted a failure
        thread.join()
    if failures:  # each process said why on its own standard error
        print(f"archspec: launch: {', '.join(sorted(failures))}", file=sys.stderr)
        return code or 1
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
