"""`archspec predict`: class probabilities for image files, from trained parameters or from an exported model
(MXNet symbol files or ONNX), so that a deployed file is checked the way the network it came from is.

Images go through what training's image folders go through (`images.read_image`, then `data.to_input`). The
class names are those given with --classes, or those kept with the model (the run folder's `classes.json`, an
MXNet export's `NAME-classes.json`, an ONNX file's metadata), or Fashion-MNIST's ten when the network has ten
outputs, or else the class numbers."""
from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as onp

from ..spec.diagnostics import InputError
from .data import FASHION_MNIST_LABELS, to_input
from .folder import CLASSES_FILE
from .images import read_image
from .transforms import Transforms, apply


def _decoded(path: Path, channels: int) -> onp.ndarray:
    """An image file at its own size (for the evaluation transforms); refused by its path."""
    from .stream import decode

    if not path.is_file():
        raise InputError(f"{path}: no such image file")
    return decode(path.read_bytes(), str(path), channels)


Scores = Callable[[onp.ndarray], onp.ndarray]
MAX_NAMES_BYTES = 1 << 20
ENGINES = ("mxnet", "onnxruntime")  # --engine: what runs the network (default: the file's own engine)


def model(spec: Any, path: Path, engine: Optional[str] = None, rewrites: Optional[str] = None
          ) -> tuple[Scores, Optional[list[str]]]:
    """A function from float32 N x C x H x W inputs to N x classes scores, and the class names kept with the
    model, for `path`: Gluon parameters of `spec` (`.params`, names in its run folder's classes.json), an MXNet
    export (`NAME-symbol.json` beside `NAME-0000.params` and `NAME-classes.json`) or an ONNX file (names in its
    metadata). `engine`: Gluon parameters run on MXNet, or on ONNX Runtime through an ONNX export of the built
    network; an export runs on the engine it was written for."""
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    export = re.fullmatch(r"(.*)-(symbol\.json|\d{4}\.params)", path.name)  # its graph, or its weights beside it
    exported = export and path.with_name(f"{export[1]}-symbol.json").is_file()
    own = "mxnet" if exported or path.suffix.lower() != ".onnx" else "onnxruntime"
    if engine is not None and engine != own and (exported or own == "onnxruntime"):
        raise InputError(f"{path}: an {'MXNet' if exported else 'ONNX'} export runs on {own}, not --engine "
                         f"{engine} (--engine picks what runs a .params file)")
    if export and exported:
        prefix = export[1]
        params = path if export[2].endswith(".params") else path.with_name(f"{prefix}-0000.params")
        run, names = _symbol(path.with_name(f"{prefix}-symbol.json"), params), \
            read_names(path.with_name(f"{prefix}-{CLASSES_FILE}"))
    elif path.suffix.lower() == ".onnx":
        run, names = _onnx(path, spec)
    else:
        from mxnet import np

        from ..gluon.build import build_model, load_parameters
        from ..gluon.precision import for_inference

        net = build_model(spec, rewrites=rewrites)
        load_parameters(net, path)
        block = net if engine == "onnxruntime" else for_inference(net, "fp32")  # with the rewrites of inference
        run = on_onnxruntime(net) if engine == "onnxruntime" else (lambda x: block(np.array(x)).asnumpy())
        names = run_names(path)
    return _checked(run, path, spec), names


def on_onnxruntime(net: Any) -> Scores:
    """`net` with its current weights, run by ONNX Runtime (`--engine onnxruntime`): exported to ONNX as
    `archspec export --format onnx` writes it, in a temporary folder, and loaded from there."""
    _onnxruntime("--engine onnxruntime")
    from ..gluon.export import export

    with tempfile.TemporaryDirectory(prefix="archspec-onnx-") as folder:
        path = Path(folder) / f"{net.spec.name}.onnx"
        export(net, path, "onnx")
        return _onnx(path, net.spec)[0]  # the session holds the model: the file may go


def _onnxruntime(what: str) -> Any:
    """ONNX Runtime, or a refusal naming the extra that installs it."""
    try:
        import onnxruntime
    except ImportError:
        raise InputError(f"{what} needs ONNX Runtime: pip install 'archspec[export]'") from None
    return onnxruntime


def _checked(run: Scores, path: Path, spec: Any) -> Scores:
    """`run`, refusing a model that does not take the spec's input or does not give one score a class."""
    def scores(x: onp.ndarray) -> onp.ndarray:
        try:
            out = onp.asarray(run(x))
        except Exception as e:  # MXNet's or ONNX Runtime's own refusal of an input the model was not made for
            detail = (str(e).strip().splitlines() or [type(e).__name__])[-1][:200]
            raise InputError(f"{path}: does not run on {spec.name}'s input, N x "
                             f"{'x'.join(map(str, spec.input.shape))} ({detail})") from None
        if out.ndim != 2 or len(out) != len(x):
            raise InputError(f"{path}: gives {'x'.join(map(str, out.shape[1:])) or 'a scalar'} an image, not one "
                             "score a class (end the network with a dense layer)")
        return out

    return scores


def _symbol(path: Path, params: Path) -> Scores:
    import warnings

    from mxnet import gluon, np, npx
    from mxnet.base import MXNetError

    if not params.is_file():
        raise InputError(f"{path}: no {params.name} beside it (an MXNet export is NAME-symbol.json and "
                         "NAME-0000.params)")
    npx.set_np()  # the export was written in numpy mode, as build_model builds
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            block = gluon.SymbolBlock.imports(str(path), ["data"], str(params))
    except (MXNetError, ValueError, AssertionError, json.JSONDecodeError) as e:
        raise InputError(f"{path}: not an MXNet export MXNet can load ({str(e).strip().splitlines()[-1][:200]})") \
            from None
    return lambda x: block(np.array(x)).asnumpy()


def _onnx(path: Path, spec: Any) -> tuple[Scores, Optional[list[str]]]:
    onnxruntime = _onnxruntime("predicting with an ONNX file")
    try:
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types for files it cannot read
        raise InputError(f"{path}: not an ONNX model ONNX Runtime can load ({str(e).strip()[:200]})") from None
    if len(session.get_inputs()) != 1:
        raise InputError(f"{path}: has {len(session.get_inputs())} inputs; a classifier takes one, the images")
    first = session.get_inputs()[0]
    if list(first.shape[1:]) != list(spec.input.shape):
        raise InputError(f"{path}: takes {first.shape}, but {spec.name} takes N x {spec.input.shape}")
    kept = session.get_modelmeta().custom_metadata_map.get("classes")
    return (lambda x: session.run(None, {first.name: x.astype(onp.float32)})[0]), \
        _names(kept, f"{path} (metadata 'classes')") if kept else None


def run_names(params: Path) -> Optional[list[str]]:
    """The class names kept in the run folder of `params` (final.params, or checkpoints/*.params), if any."""
    folder = params.parent.parent if params.parent.name == "checkpoints" else params.parent
    return read_names(folder / CLASSES_FILE)


def read_names(path: Path) -> Optional[list[str]]:
    """A JSON list of class names; None if there is no such file."""
    if not path.is_file():
        return None
    if path.stat().st_size > MAX_NAMES_BYTES:
        raise InputError(f"{path}: more than {MAX_NAMES_BYTES >> 20} MiB; expected a JSON list of class names")
    try:
        return _names(path.read_text(), str(path))
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: not a JSON list of class names ({e})") from None


def _names(text: str, source: str) -> list[str]:
    try:
        names = json.loads(text)
    except (ValueError, RecursionError) as e:  # RecursionError: "[[[[..." nested deeper than Python recurses
        raise InputError(f"{source}: not a JSON list of class names ({type(e).__name__})") from None
    if not (isinstance(names, list) and names and all(isinstance(n, str) for n in names)):
        raise InputError(f"{source}: expected a JSON list of class names")
    return names


def predict(spec: Any, params: Path, images: Sequence[Path], top: int = 3,
            names_file: Optional[Path] = None, steps: Transforms = (), engine: Optional[str] = None,
            rewrites: Optional[str] = None) -> list[dict[str, Any]]:
    """For each image, its `top` classes, most probable first: [{"image", "top": [{"class", "name",
    "probability"}]}]. Every image is read before the model is loaded, so a bad one fails fast. `steps`: a
    recipe's evaluation transforms, applied to each image at its own size (else it is resized to the input).
    `engine` and `rewrites` (`--rewrites`, `gluon.rewrites`): as `model` takes them."""
    from mxnet import cpu

    channels, height, width = spec.input.shape
    if steps:
        inputs = onp.stack([apply(steps, _decoded(Path(p), channels), onp.random.default_rng(0), (height, width))
                            for p in images])
    else:
        pixels = onp.stack([read_image(Path(p), channels, (height, width)) for p in images])
        inputs = to_input(pixels, None, cpu()).asnumpy()
    run, kept = model(spec, params, engine, rewrites)
    scores = onp.concatenate([run(inputs[i:i + 256]) for i in range(0, len(inputs), 256)]).astype(onp.float64)
    scores = onp.exp(scores - scores.max(axis=1, keepdims=True))
    probabilities = scores / scores.sum(axis=1, keepdims=True)
    names = read_names(names_file) if names_file else kept
    if names_file and names is None:
        raise InputError(f"{names_file}: no such file")
    classes = probabilities.shape[1]
    if names is None:  # none kept: Fashion-MNIST's (D2L's text_labels), or the class numbers
        fashion = classes == len(FASHION_MNIST_LABELS)
        names = list(FASHION_MNIST_LABELS) if fashion else [str(k) for k in range(classes)]
    if len(names) != classes:
        raise InputError(f"{names_file or params}: {len(names)} class names for a network of {classes} outputs")
    results = []
    for image, row in zip(images, probabilities):
        best = onp.argsort(-row, kind="stable")[:top]
        results.append({"image": str(image), "top": [{"class": int(k), "name": names[k],
                                                       "probability": round(float(row[k]), 6)} for k in best]})
    return results


def write_predictions(path: str, split: Any, predicted: list[int], inputs: Sequence[str]) -> None:
    """One CSV row an example: its number, its file (for image folders), its label and the predicted class."""
    import csv
    import io

    from ..files import write_atomically

    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["example", "file", "label", "predicted"])
    files = split.names or [""] * len(split)
    writer.writerows([k, f, int(label), p] for k, (f, label, p) in enumerate(zip(files, split.labels, predicted)))
    write_atomically(path, text.getvalue().encode(errors="surrogateescape"), inputs)  # names as they are on disk
