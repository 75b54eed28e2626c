"""A built network out of the library: MXNet symbol files (`gluon.SymbolBlock.imports`) and ONNX
(through MXNet's own exporter, `mxnet.onnx`). Files appear complete or not at all."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import InputError

FORMATS = ("mxnet", "onnx")


def export(net, output: str | os.PathLike, fmt: str = "mxnet") -> list[Path]:
    """Write a network built by `build_model` (with its current weights) and return the files written.

    `mxnet`: `OUTPUT-symbol.json` and `OUTPUT-0000.params`, loadable with
    `gluon.SymbolBlock.imports(json, ["data"], params)`. `onnx`: the file `OUTPUT`, whose input `data`
    has a free batch dimension. Only the inference graph is exported: auxiliary heads are left out.
    """
    from .builder import traced

    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    output = Path(output)
    if not output.parent.is_dir():
        raise InputError(f"{output.parent}: no such directory")
    graph = traced(net)  # the graph that is exported
    with tempfile.TemporaryDirectory(dir=output.parent, prefix=".archspec-export-") as tmp:
        net.export(os.path.join(tmp, "model"))
        if fmt == "mxnet":
            files = {Path(tmp, "model-symbol.json"): Path(f"{output}-symbol.json"),
                     Path(tmp, "model-0000.params"): Path(f"{output}-0000.params")}
        else:
            _to_onnx(net, graph, Path(tmp, "model.onnx"))
            files = {Path(tmp, "model.onnx"): output}
        for src, dst in files.items():
            os.replace(src, dst)  # same file system: each file appears whole
    return list(files.values())


def _to_onnx(net, graph, path: Path) -> None:
    import numpy as onp
    import onnx
    from mxnet import onnx as mx_onnx

    _register_converters()
    _, sym, weights = graph
    params = {name: w.as_nd_ndarray() for name, w in weights.items()}
    shape = (1,) + net.spec.input.shape
    try:
        mx_onnx.export_model(sym, params, in_shapes=[shape], in_types=[onp.float32], onnx_file_path=str(path),
                             dynamic=True, dynamic_input_shapes=[(None,) + shape[1:]])
    except (AttributeError, NotImplementedError) as e:
        raise InputError(f"{net.spec.name}: ONNX cannot express this network: {e}") from None
    model = onnx.load(str(path))
    _tidy(model, {p.name: name for name, p in net._collect_params_with_prefix().items()})
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def _tidy(model, names: dict[str, str]) -> None:
    """Weights as constants (not graph inputs, which runtimes cannot fold), named as in Gluon
    (`b3.0.branch2.0.weight` rather than `conv12_weight`)."""
    graph = model.graph
    weights = {t.name for t in graph.initializer}
    kept = [i for i in graph.input if i.name not in weights]
    del graph.input[:]
    graph.input.extend(kept)
    for t in graph.initializer:
        t.name = names.get(t.name, t.name)
    for node in graph.node:
        node.input[:] = [names.get(i, i) for i in node.input]


# numpy-mode operators that built networks use -> the classic operator whose converter MXNet ships
_ALIASES = {"_npi_add": "broadcast_add", "_npi_multiply": "broadcast_mul", "_npi_multiply_scalar": "_mul_scalar",
            "_npi_add_scalar": "_plus_scalar", "_npx_sigmoid": "sigmoid", "_npx_relu": "relu"}


def _register_converters() -> None:
    """MXNet 1.9's ONNX exporter predates numpy mode: teach it the `_npi_` operators."""
    import onnx
    from mxnet.onnx.mx2onnx._export_onnx import MXNetGraph
    from mxnet.onnx.mx2onnx._op_translations._op_translations_opset12 import get_inputs

    def concatenate(node, **kwargs):  # Concat's converter reads `dim`; numpy's operator has `axis`
        name, inputs, attrs = get_inputs(node, kwargs)
        return [onnx.helper.make_node("Concat", inputs, [name], name=name, axis=int(attrs.get("axis", 0)))]

    registry = MXNetGraph.registry_[12]
    MXNetGraph.register("_npi_concatenate")(concatenate)
    for op, classic in _ALIASES.items():
        MXNetGraph.register(op)(registry[classic])
