"""The environment of the worker processes archspec starts itself (`search --jobs`, `launch --launcher local`).

They share the machine's cores with each other, so their OpenMP threads should yield the core while they wait
instead of spinning on it: `OMP_WAIT_POLICY=PASSIVE`, read by the OpenMP runtime when MXNet loads, which a
fresh process does after this environment is set. Under one CPU-bound neighbour GoogLeNet's training step fell
from about 115 to 6-80 images/s from run to run with spinning threads, and held 41 with passive ones (issue 25).
A value the user set wins. The data-loading workers of `--workers` are forked from the training process and run
numpy and PIL only, no OpenMP: they do not spin, and an environment set after the fork could not reach the
runtime the parent already loaded.
"""
from __future__ import annotations

import os
from typing import Optional


def worker_environment(threads: Optional[int] = None) -> dict[str, str]:
    """This process's environment for a worker: OpenMP threads that yield (unless the user chose a policy) and,
    given `threads`, that many of them (unless the user chose a count)."""
    env = dict(os.environ)
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if threads is not None:
        env.setdefault("OMP_NUM_THREADS", str(threads))
    return env
