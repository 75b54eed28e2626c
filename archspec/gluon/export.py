"""A built network out of the library: MXNet symbol files (`gluon.SymbolBlock.imports`) and ONNX
(through MXNet's own exporter, `mxnet.onnx`). Files appear complete or not at all."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Literal, Optional, Sequence, Union

from mxnet import np

from ..files import named, target
from ..spec.diagnostics import InputError
from .build import traced
from .compat import onnx_graph, onnx_node_inputs, params_by_path, register_onnx_converters
from .modules import Network
from .precision import Precision, for_inference

FORMATS = ("mxnet", "onnx")


def export(net: Network, output: Union[str, os.PathLike[str]], fmt: Literal["mxnet", "onnx"] = "mxnet",
           classes: Optional[Sequence[str]] = None, precision: Precision = "fp32",
           calibration: Optional[Any] = None) -> list[Path]:
    """Write a network built by `build_model` (with its current weights) and return the files written.

    `mxnet`: `OUTPUT-symbol.json` and `OUTPUT-0000.params`, loadable with
    `gluon.SymbolBlock.imports(json, ["data"], params)`. `onnx`: the file `OUTPUT`, whose input `data`
    has a free batch dimension. Only the inference graph is exported: auxiliary heads are left out.
    The names of the `classes` go with the model: `OUTPUT-classes.json` (a JSON list), or the ONNX model's
    metadata (`classes`, the same JSON). A spec's input normalisation (`input.mean`, `input.std`), which the
    graph applies, is recorded the same way: `OUTPUT-preprocessing.json`, or the metadata `preprocessing`.
    `precision` bf16 or int8 (mxnet format only) writes the graph `gluon.precision.for_inference` makes,
    INT8 calibrated on `calibration`.
    """
    check_format(fmt, precision)
    output = Path(named(output))  # Path('') is '.': the files would be the hidden .-symbol.json, ...
    if not output.parent.is_dir():
        raise InputError(f"{output.parent}: no such directory")
    block = for_inference(net, precision, calibration, portable=True)  # a graph any MXNet (and ONNX) runs
    graph = traced(net, block) if precision == "fp32" else None  # the graph that is exported
    if graph is None:
        block(np.zeros((1,) + net.spec.input.shape)).wait_to_read()  # traced: what `export` writes
    try:
        folder = tempfile.TemporaryDirectory(dir=output.parent, prefix=".archspec-export-")
    except OSError as e:
        raise InputError(f"{output}: cannot write here ({e.strerror or e})") from None
    with folder as tmp:
        block.export(os.path.join(tmp, "model"))
        names = json.dumps(list(classes)) if classes else None
        written = destinations(output, fmt)
        if fmt == "mxnet":
            files = {Path(tmp, "model-symbol.json"): written[0], Path(tmp, "model-0000.params"): written[1]}
            if names:
                Path(tmp, "classes.json").write_text(names)
                files[Path(tmp, "classes.json")] = written[2]
            if preprocessing(net):
                Path(tmp, "preprocessing.json").write_text(preprocessing(net) or "")
                files[Path(tmp, "preprocessing.json")] = written[3]
        else:
            assert graph is not None  # check_format: ONNX holds fp32 only
            _to_onnx(net, graph, Path(tmp, "model.onnx"), names)
            files = {Path(tmp, "model.onnx"): output}
        for dst in files.values():
            target(dst)  # a folder or a device there is refused before any file is replaced
        for src, dst in files.items():
            os.replace(src, target(dst))  # same file system: each file appears whole
        for stale in written[2:]:
            if stale not in files.values() and stale.is_file():
                stale.unlink()  # an earlier export's to the same name are not this model's
    return list(files.values())


def destinations(output: Union[str, os.PathLike[str]], fmt: str) -> list[Path]:
    """The files `export` may write for `output`: mxnet's symbol, parameters, class names and preprocessing, or the
    ONNX file."""
    if fmt == "mxnet":
        return [Path(f"{output}-{suffix}")
                for suffix in ("symbol.json", "0000.params", "classes.json", "preprocessing.json")]
    return [Path(output)]


def preprocessing(net: Network) -> Optional[str]:
    """The input normalisation a spec declares, as an export records it (JSON), or None. The graph applies it:
    a caller feeds pixels scaled to 0..1, channels first."""
    spec_input = net.spec.input
    if spec_input.mean is None:
        return None
    return json.dumps({"input": "pixels scaled to 0..1, NCHW", "mean": list(spec_input.mean),
                       "std": list(spec_input.std or ()), "applied": "in the graph: (x - mean) / std per channel"})


def check_format(fmt: str, precision: Precision = "fp32") -> None:
    """A format `export` writes, and one that can hold `precision` (ONNX: float32 only)."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if precision != "fp32" and fmt != "mxnet":
        raise InputError(f"--precision {precision} exports MXNet symbol files (--format mxnet), not {fmt}")


def _to_onnx(net: Network, graph: tuple[Any, Any, dict[str, Any]], path: Path, classes: Optional[str]) -> None:
    try:
        import onnx
    except ModuleNotFoundError as e:  # an optional dependency: name the extra that brings it
        raise InputError(f"--format onnx needs the `export` extra, which is not installed ({e.name} is "
                         "missing): pip install 'archspec[export]'") from None

    register_onnx_converters(_ALIASES, {"_npi_concatenate": _concatenate, "_np_reshape": _reshape,
                                        "LayerNorm": _layernorm, "null": _weights_and_inputs})
    _, sym, weights = graph
    params = {name: w.as_nd_ndarray() for name, w in weights.items()}
    shape = (1,) + net.spec.input.shape
    try:
        model = onnx.helper.make_model(onnx_graph(sym, params, shape, (None,) + shape[1:]))
    except (AttributeError, NotImplementedError) as e:
        raise InputError(f"{net.spec.name}: ONNX cannot express this network: {e}") from None
    del params
    _tidy(model, {p.name: name for name, p in params_by_path(net).items()})
    _name_outputs(model, net.output_names)
    props = {"classes": classes, "preprocessing": preprocessing(net)}
    if any(props.values()):
        onnx.helper.set_model_props(model, {k: v for k, v in props.items() if v})
    onnx.save(model, str(path))
    del model
    onnx.checker.check_model(str(path))  # from the file: no second copy of the weights in Python


def _tidy(model: Any, names: dict[str, str]) -> None:
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


def _name_outputs(model: Any, names: list[str]) -> None:
    """The graph's outputs named after their stages (`b4`, `b5`), in order: what a runtime's caller asks for."""
    graph = model.graph
    if len(names) != len(graph.output):
        return
    renamed = {out.name: name for out, name in zip(graph.output, names)}
    for out in graph.output:
        out.name = renamed[out.name]
    for node in graph.node:
        node.output[:] = [renamed.get(o, o) for o in node.output]
        node.input[:] = [renamed.get(i, i) for i in node.input]


# MXNet 1.9's ONNX exporter predates numpy mode: the numpy-mode operators built networks use -> the classic
# operator whose converter MXNet ships
_ALIASES = {"_npi_add": "broadcast_add", "_npi_multiply": "broadcast_mul", "_npi_multiply_scalar": "_mul_scalar",
            "_npi_add_scalar": "_plus_scalar", "_npx_sigmoid": "sigmoid", "_npx_relu": "relu",
            "_npi_true_divide_scalar": "_div_scalar", "_np_copy": "_copy"}


def _weights_and_inputs(node: Any, **kwargs: Any) -> tuple[list[Any], tuple[Any]]:
    """MXNet's own converter of weights and inputs, with the weights stored as raw bytes: MXNet's goes through a
    Python list of floats (`tolist()`), 24 bytes a weight, which took a 128M-parameter VGG's export to 6.6 GB."""
    import numpy as onp
    import onnx
    from onnx import numpy_helper

    name, _, _ = onnx_node_inputs(node, kwargs)
    if kwargs["is_input"]:
        dtype = kwargs["in_type"]
        return [onnx.helper.make_tensor_value_info(name, dtype, kwargs["in_shape"])], \
            (onnx.mapping.TENSOR_TYPE_TO_NP_TYPE[dtype],)
    weights = onp.asarray(kwargs["weights"][name])
    kwargs["initializer"].append(numpy_helper.from_array(weights, name))
    dtype = onnx.mapping.NP_TYPE_TO_TENSOR_TYPE[weights.dtype]
    return [onnx.helper.make_tensor_value_info(name, dtype, weights.shape)], (weights.dtype,)


def _concatenate(node: Any, **kwargs: Any) -> list[Any]:
    """numpy's `concatenate` as ONNX Concat (MXNet's Concat converter reads `dim`; numpy's operator has `axis`)."""
    import onnx

    name, inputs, attrs = onnx_node_inputs(node, kwargs)
    return [onnx.helper.make_node("Concat", inputs, [name], name=name, axis=int(attrs.get("axis", 0)))]


def _reshape(node: Any, **kwargs: Any) -> list[Any]:
    """numpy's `reshape` as ONNX Reshape to a constant shape (MXNet's Reshape converter reads `shape`; numpy's
    operator has `newshape`): layer_scale's factors, (C,) to (C, 1, 1)."""
    import onnx

    name, inputs, attrs = onnx_node_inputs(node, kwargs)
    shape = [int(size) for size in str(attrs["newshape"]).strip("()[] ").split(",") if size.strip()]
    value = onnx.helper.make_tensor(name + "_shape", onnx.TensorProto.INT64, [len(shape)], shape)
    return [onnx.helper.make_node("Constant", [], [name + "_shape"], name=name + "_shape", value=value),
            onnx.helper.make_node("Reshape", [inputs[0], name + "_shape"], [name], name=name)]


def _layernorm(node: Any, **kwargs: Any) -> list[Any]:
    """Layer norm over one axis (the layernorm kind's channels: ConvNeXt's LayerNorm2d) in ONNX primitives:
    MXNet's converter writes ReduceMean's axes as an attribute, which the opsets from 18 on refuse. The rank is
    not known here, so gamma and beta take the shape (C, 1, ..., 1) from the input's at run time."""
    import onnx
    from onnx import TensorProto

    name, (x, gamma, beta), attrs = onnx_node_inputs(node, kwargs)
    axis, eps = int(attrs.get("axis", -1)), float(attrs.get("eps", 1e-5))

    def const(suffix: str, kind: int, values: list[Any]) -> Any:
        tensor = onnx.helper.make_tensor(name + suffix, kind, [len(values)], values)
        return onnx.helper.make_node("Constant", [], [name + suffix], name=name + suffix, value=tensor)

    def op(kind: str, inputs: list[str], suffix: str, **attributes: Any) -> Any:
        return onnx.helper.make_node(kind, inputs, [name + suffix], name=name + suffix, **attributes)

    ones = onnx.helper.make_tensor(name + "_one", TensorProto.INT64, [1], [1])
    return [const("_axes", TensorProto.INT64, [axis]), const("_two", TensorProto.INT64, [2]),
            const("_minus_one", TensorProto.INT64, [-1]), const("_eps", TensorProto.FLOAT, [eps]),
            op("ReduceMean", [x, name + "_axes"], "_mean"), op("Sub", [x, name + "_mean"], "_centred"),
            op("Mul", [name + "_centred", name + "_centred"], "_square"),
            op("ReduceMean", [name + "_square", name + "_axes"], "_var"),
            op("Add", [name + "_var", name + "_eps"], "_var_eps"), op("Sqrt", [name + "_var_eps"], "_std"),
            op("Div", [name + "_centred", name + "_std"], "_normed"),
            op("Shape", [x], "_shape"), op("Shape", [name + "_shape"], "_rank"),
            op("Sub", [name + "_rank", name + "_two"], "_trailing"),
            op("ConstantOfShape", [name + "_trailing"], "_ones", value=ones),
            op("Concat", [name + "_minus_one", name + "_ones"], "_affine_shape", axis=0),
            op("Reshape", [gamma, name + "_affine_shape"], "_gamma"),
            op("Reshape", [beta, name + "_affine_shape"], "_beta"),
            op("Mul", [name + "_normed", name + "_gamma"], "_scaled"),
            onnx.helper.make_node("Add", [name + "_scaled", name + "_beta"], [name], name=name)]
