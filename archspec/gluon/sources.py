"""Reading other libraries' weight files into named numpy arrays, in the order the file keeps them.

MXNet's `.params` (model zoo, GluonCV, `save_parameters`), PyTorch's state dicts (`.pth`, read with torch, an
optional dependency imported only here and only when asked) and `.safetensors` (read here with numpy alone).
Each reader returns `(arrays, ordered)`: `ordered` says whether the file keeps the order in which the source
network registered its arrays (a safetensors file is sorted by dtype and name when written, so it does not).
"""
from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any, Callable, Union

import numpy as onp

from ..spec.diagnostics import InputError

Arrays = dict[str, onp.ndarray]
Path_ = Union[str, os.PathLike[str]]

# safetensors' dtype names -> numpy (BF16 has no numpy type: read as uint16 and widened below)
_SAFETENSORS_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2", "I64": "<i8", "I32": "<i4",
                       "I16": "<i2", "I8": "i1", "U8": "u1", "BOOL": "?"}
_MAX_HEADER = 100 * 2**20  # the format's own limit on the JSON header


def read_mxnet(path: Path) -> tuple[Arrays, bool]:
    """An MXNet `.params` file (Gluon's `save_parameters`, the model zoo's and GluonCV's downloads)."""
    from mxnet import nd, npx, util
    from mxnet.base import MXNetError

    try:
        loaded = npx.load(str(path))  # saved in numpy mode (archspec's own, MXNet 2-style)
    except MXNetError:
        try:  # saved in the classic mode (the model zoo's and GluonCV's files), read in the classic mode
            with util.np_array(False), util.np_shape(False):
                loaded = nd.load(str(path))
        except MXNetError:
            raise InputError(f"{path}: not an MXNet parameters file (corrupt or truncated?)") from None
    if not isinstance(loaded, dict):
        raise InputError(f"{path}: a list of unnamed arrays, not a parameters file of named arrays")
    return {name: array.asnumpy() for name, array in loaded.items()}, True


def read_torch(path: Path) -> tuple[Arrays, bool]:
    """A PyTorch state dict (`torch.save(model.state_dict(), path)`), or a checkpoint holding one under
    `state_dict` or `model`. Loaded with `weights_only=True`: tensors, never pickled code."""
    try:
        import torch
    except ImportError:
        raise InputError(f"{path}: reading a PyTorch file needs torch (pip install torch); or save the weights as "
                         ".safetensors, which archspec reads without it") from None
    try:
        loaded = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many kinds (pickle, zip, runtime) for a file that is not its own
        raise InputError(f"{path}: not a PyTorch state dict ({type(e).__name__}: "
                         f"{str(e).strip().splitlines()[0] if str(e).strip() else ''})") from None
    for key in ("state_dict", "model"):
        if isinstance(loaded, dict) and isinstance(loaded.get(key), dict):
            loaded = loaded[key]
    if not isinstance(loaded, dict) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise InputError(f"{path}: not a state dict of named tensors")
    return {name: t.detach().float().numpy() if t.is_floating_point() else t.numpy()
            for name, t in loaded.items()}, True


def read_safetensors(path: Path) -> tuple[Arrays, bool]:
    """A `.safetensors` file: an 8-byte header length, a JSON header, the arrays' bytes."""
    data = path.read_bytes()
    if len(data) < 8:
        raise InputError(f"{path}: not a safetensors file (too short)")
    (size,) = struct.unpack("<Q", data[:8])
    if size > min(_MAX_HEADER, len(data) - 8):
        raise InputError(f"{path}: not a safetensors file (header length {size} beyond the file)")
    try:
        header = json.loads(data[8:8 + size])
    except (UnicodeDecodeError, ValueError):
        raise InputError(f"{path}: not a safetensors file (its header is not JSON)") from None
    if not isinstance(header, dict):
        raise InputError(f"{path}: not a safetensors file (its header is not a JSON object)")
    body = memoryview(data)[8 + size:]
    arrays = {}
    for name, info in header.items():
        if name != "__metadata__":
            arrays[name] = _safetensor(path, name, info, body)
    return arrays, False


def _safetensor(path: Path, name: str, info: Any, body: memoryview) -> onp.ndarray:
    try:
        dtype, shape, (begin, end) = info["dtype"], tuple(int(n) for n in info["shape"]), info["data_offsets"]
    except (TypeError, KeyError, ValueError):
        raise InputError(f"{path}: {name}: not a safetensors entry (dtype, shape, data_offsets)") from None
    if dtype not in _SAFETENSORS_DTYPES:
        raise InputError(f"{path}: {name}: dtype {dtype} is not one archspec reads "
                         f"({', '.join(_SAFETENSORS_DTYPES)})")
    np_dtype = onp.dtype(_SAFETENSORS_DTYPES[dtype])
    count = int(onp.prod(shape)) if shape else 1
    if not (isinstance(begin, int) and isinstance(end, int) and 0 <= begin <= end <= len(body)
            and end - begin == count * np_dtype.itemsize):
        raise InputError(f"{path}: {name}: its bytes [{begin}, {end}) do not hold {dtype} {list(shape)} inside the "
                         "file (truncated?)")
    array = onp.frombuffer(body[begin:end], np_dtype).reshape(shape)
    if dtype == "BF16":  # bfloat16 is the upper half of a float32
        return (array.astype("<u4") << 16).view("<f4")
    return array.astype(array.dtype.newbyteorder("="))


READERS: dict[str, Callable[[Path], tuple[Arrays, bool]]] = {
    "mxnet": read_mxnet, "gluoncv": read_mxnet, "torch": read_torch, "safetensors": read_safetensors}


def read(source: str, path: Path_) -> tuple[Arrays, bool]:
    """The arrays of `path`, a file of `source` (one of `READERS`), and whether their order is the network's."""
    path = Path(path)
    if source not in READERS:
        raise InputError(f"--from {source}: expected one of {', '.join(READERS)}")
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    return READERS[source](path)
