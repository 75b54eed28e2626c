"""The Gluon backend: a validated spec and its analysis in, MXNet Gluon blocks out.

`build` (build_model, load_parameters), `layers` (the Gluon constructor of every built-in kind), `modules`
(the few Gluon blocks MXNet does not ship), `export` (symbol files, ONNX), `precision` (bfloat16 / INT8
inference) and `compat` (every private MXNet attribute archspec touches). Everything here imports MXNet;
this package's import is where archspec first does, so it sets MXNet's thread count first (below).
"""
from __future__ import annotations

import os
import sys

# MXNet reads OMP_NUM_THREADS once, at its import, and unset computes on one core: use the cores this process may
# run on, unless the user chose (the other import-time settings measured: bench/results/settings.md).
if "mxnet" not in sys.modules:
    os.environ.setdefault("OMP_NUM_THREADS", str(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                                                 else os.cpu_count() or 1))
