"""MXNet's own distributed launcher (`mxnet/tools/launch.py` + dmlc_tracker), made to run on Python 3.9+.

Two shims, nothing else: dmlc_tracker calls `Thread.isAlive`, which Python 3.9 removed, and for local
jobs it binds the tracker to the address it guesses for the host name, which a machine without a
resolvable name or outside network cannot reach; local jobs use 127.0.0.1.
"""
from __future__ import annotations

import os
import runpy
import sys
import threading


def launcher_path() -> str:
    import mxnet

    path = os.path.join(os.path.dirname(mxnet.__file__), "tools", "launch.py")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: this MXNet install has no tools/launch.py")
    return path


def main(argv: list[str]) -> int:
    """`archspec launch -n 2 -s 1 --launcher local -- archspec train ...`: the arguments of MXNet's launch.py."""
    if not hasattr(threading.Thread, "isAlive"):
        threading.Thread.isAlive = threading.Thread.is_alive
    if "local" in argv[: argv.index("--") if "--" in argv else len(argv)]:
        from dmlc_tracker import tracker

        tracker.get_host_ip = lambda host_ip=None: "127.0.0.1"
    path = launcher_path()
    args = [a for a in argv if a != "--"]
    sys.argv = [path, *args]
    try:
        runpy.run_path(path, run_name="__main__")
    except SystemExit as e:
        return int(e.code or 0) if not isinstance(e.code, str) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
