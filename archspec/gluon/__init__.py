"""The Gluon backend: a validated spec and its analysis in, MXNet Gluon blocks out.

`build` (build_model, load_parameters), `layers` (the Gluon constructor of every built-in kind), `modules`
(the few Gluon blocks MXNet does not ship), `export` (symbol files, ONNX), `precision` (bfloat16 / INT8
inference) and `compat` (every private MXNet attribute archspec touches). Everything here imports MXNet;
this package's import is where archspec first does, so it sets MXNet's thread count first (below).
"""
from __future__ import annotations

import os
import sys

# MXNet reads OMP_NUM_THREADS once, at its import; unset, it computes on one core (half speed on the 2-core
# machines measured in bench/). Use the cores this process may run on, unless the user chose.
#
# The other settings MXNet reads at import were measured on a GoogLeNet training step (SGD, batch 64, 2 cores;
# the fastest of 30 steps, each setting in its own process, twice; issue 14) and none is changed here, because
# none won beyond the 3% two runs of the same setting differ by:
#   MXNET_OPTIMIZER_AGGREGATION_SIZE (SGD's multi-tensor update; 4 by default): 1 as fast; 16 and 60 slower
#     (the update of all 116 tensors took 17-20 ms instead of 14: one call over more tensors parallelises worse)
#   MXNET_ENGINE_TYPE=NaiveEngine, MXNET_EXEC_BULK_EXEC_TRAIN=0, MXNET_USE_OPERATOR_TUNING=0,
#   MXNET_EXEC_INPLACE_GRAD_SUM_CAP=2: within +-3% of the default, in both directions
# A step is operators run one after another (99% of its time in MXNet's profiler): nothing for the engine to
# overlap. What did win is in
# the graph: Concat instead of numpy's concatenate (gluon.modules.concat_channels, +7%), and
# hybridize(static_alloc=True, static_shape=True) (gluon.build.HYBRIDIZE).
if "mxnet" not in sys.modules:
    os.environ.setdefault("OMP_NUM_THREADS", str(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                                                 else os.cpu_count() or 1))
