"""Every private attribute of MXNet (1.9.1, read from its source) that archspec touches, in one place.

Each function says what it reaches into and why the public API does not do. When MXNet changes, this is
the one module to read again.
"""
from __future__ import annotations

import functools
import threading
import warnings
from typing import Any, Callable

from mxnet.gluon import HybridBlock, Trainer


def params_by_path(block: HybridBlock) -> dict[str, Any]:
    """Parameters by their structural names (`b3.0.branch2.1.weight`), the names `save_parameters` writes.
    `collect_params()` keys them by their global, creation-order names (`conv12_weight`) instead."""
    return block._collect_params_with_prefix()


def is_hybridized(block: HybridBlock) -> bool:
    return bool(block._active)


def cached_graph(block: HybridBlock) -> tuple[Any, Any, dict[str, Any]]:
    """The graph a hybridized block traced on its last call: `(inputs, symbol, {parameter name: array})`
    for the parameters the graph uses. `export` writes the same graph but only to files."""
    inputs, symbol = block._cached_graph
    return inputs, symbol, {p.name: p.data() for is_arg, p in block._cached_op_args if not is_arg}


class QuietUnusedParameters(HybridBlock):
    """A block whose graph leaves some children out on purpose (a network's auxiliary heads in inference),
    so Gluon's "Parameter ... is not used by any computation" warning would be noise."""

    def _build_cache(self, *args: Any) -> None:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Parameter .* is not used by any computation", UserWarning)
            super()._build_cache(*args)


def updates_on_servers(trainer: Trainer) -> bool:
    """Whether a distributed kvstore's servers hold the optimizer state (then workers have none to save).
    Known only once the trainer has initialised its kvstore (after the first step)."""
    return bool(trainer._distributed and trainer._update_on_kvstore)


def dataset_arrays(dataset: Any) -> tuple[Any, Any]:
    """The images and labels a `gluon.data.vision` MNIST-style dataset holds, without its per-item transform."""
    return dataset._data, dataset._label


def register_onnx_converters(aliases: dict[str, str], extra: dict[str, Callable[..., Any]]) -> None:
    """Teach MXNet 1.9's ONNX exporter operators it predates: `aliases` maps an operator to one whose converter
    it ships (looked up in its opset-12 registry), `extra` gives new converters, or replaces its own at every opset
    it has a registry for (it looks from the newest down: its opset-13 LayerNorm would win over one at 12).
    Global, and idempotent."""
    from mxnet.onnx.mx2onnx._export_onnx import MXNetGraph

    shipped = MXNetGraph.registry_[12]
    for op, converter in extra.items():
        for version in list(MXNetGraph.registry_):
            MXNetGraph.register(op, version)(converter)
    for op, classic in aliases.items():
        MXNetGraph.register(op)(shipped[classic])


def onnx_graph(symbol: Any, params: dict[str, Any], shape: tuple[int, ...], dynamic_shape: tuple[Any, ...]) -> Any:
    """The ONNX GraphProto of a symbol, as `mxnet.onnx.export_model` builds it before writing it to a file:
    taking it in memory lets the caller finish the model and write it once (exporting a 128M-parameter VGG
    through `export_model`, then loading the file to finish it, peaked at 6.6 GB)."""
    import numpy as onp
    from mxnet.onnx.mx2onnx._export_onnx import MXNetGraph
    from onnx import mapping
    from onnx.defs import onnx_opset_version

    return MXNetGraph().create_onnx_graph_proto(
        symbol, params, [shape], [mapping.NP_TYPE_TO_TENSOR_TYPE[onp.dtype("float32")]],
        opset_version=onnx_opset_version(), dynamic=True, dynamic_input_shapes=[dynamic_shape])


def onnx_node_inputs(node: Any, kwargs: dict[str, Any]) -> tuple[str, list[str], dict[str, Any]]:
    """(name, input names, attributes) of a node being converted, as MXNet's own converters read them."""
    from mxnet.onnx.mx2onnx._op_translations._op_translations_opset12 import get_inputs

    return get_inputs(node, kwargs)


def patch_launcher(local: bool, failures: list[str], workers: list[threading.Thread]) -> None:
    """MXNet's `tools/launch.py` (dmlc_tracker) on Python 3.9+: `Thread.isAlive` is gone (renamed
    `is_alive`), and a local job binds the tracker to the address it guesses for the host name, which a
    machine without a resolvable name or outside network cannot reach: local jobs use 127.0.0.1. A local
    process that exits nonzero raised in the tracker's thread (a traceback printing the whole environment) and the
    launcher still exited 0: its role, id and code go to `failures` instead. The threads that wait for the workers
    go to `workers`: the tracker may end before they have seen their workers' exit codes."""
    if not hasattr(threading.Thread, "isAlive"):
        threading.Thread.isAlive = threading.Thread.is_alive  # type: ignore[attr-defined]
    if local:
        from dmlc_tracker import local as local_jobs
        from dmlc_tracker import tracker

        tracker.get_host_ip = lambda host_ip=None: "127.0.0.1"
        run = getattr(local_jobs.exec_cmd, "__wrapped__", local_jobs.exec_cmd)

        @functools.wraps(run)
        def exec_cmd(cmd: list[str], num_attempt: int, role: str, taskid: int, pass_env: dict[str, Any]) -> None:
            if role == "worker":
                workers.append(threading.current_thread())
            try:
                run(cmd, num_attempt, role, taskid, pass_env)
            except RuntimeError as e:  # 'Get nonzero return code=1 on [...] {...environment...}'
                code = str(e).split("code=", 1)[-1].split(" ", 1)[0]
                failures.append(f"{role} {taskid} exited with code {code}")

        local_jobs.exec_cmd = exec_cmd


def use_global_stats(batchnorm: Any) -> None:
    """Make a Gluon `BatchNorm` normalise with its running statistics in training too (and so leave them as
    they are), as `BatchNorm(use_global_stats=True)` would have. Gluon reads the option from `_kwargs` when it
    traces the graph; it has no setter."""
    batchnorm._kwargs["use_global_stats"] = True
