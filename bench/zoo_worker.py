"""One engine on one spec, in a process of its own, measuring what bench/zoo.py asks for, one request at a time,
so that the engines' measurements interleave (the protocol of bench/torch_googlenet.py): each line on standard
input is a JSON request {"variant": ..., "kind": "forward"|"train", "batch": N, "seconds": S} (or {"export":
PATH} for the MXNet engine), each answer a JSON line {"images_per_s": X} or {"error": "..."}; the first line
written describes the engine, or is {"error": "..."} when the engine cannot start (then the process ends).

Run: python bench/zoo_worker.py ENGINE SPEC [--set KEY=VALUE ...] [--calibration FILE.npy] [--onnx FILE]
  mxnet  archspec's built network: fp32 (forward and training step), bf16 and int8 (inference: archspec's
         precision path, INT8 calibrated on --calibration); its threads wait as OMP_WAIT_POLICY says
  torch  the spec's PyTorch twin (bench/torch_zoo.py): nchw, channels_last, compile (channels_last under
         torch.compile)
  ort    ONNX Runtime on archspec's own ONNX export (--onnx): fp32, and int8 (static QDQ quantization, per
         channel, calibrated on --calibration)
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import images_per_second  # noqa: E402  bench/

Step = Callable[[], None]


def threads() -> int:
    return int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1)


def inputs(shape: tuple[int, ...], batch: int, classes: int, seed: int = 0) -> tuple[Any, Any]:
    """Images in 0..1 and labels, the same in every engine (numpy)."""
    import numpy as onp

    rng = onp.random.default_rng(seed)
    return rng.uniform(size=(batch,) + shape).astype("float32"), onp.arange(batch) % classes


class MXNetEngine:
    def __init__(self, spec: str, overrides: list[str], calibration: str | None):
        import archspec.gluon  # noqa: F401  sets MXNet's thread count before MXNet is imported
        from archspec import build_model

        from archspec.gluon.precision import for_inference

        self.net = build_model(spec, overrides or None)
        self.calibration = calibration
        self.blocks: dict[str, Any] = {"fp32": for_inference(self.net, "fp32")}  # what evaluate and predict run
        import mxnet

        self.info = {"engine": "mxnet", "version": mxnet.__version__,
                     "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "threads": threads()}

    def block(self, variant: str) -> Any:
        if variant not in self.blocks:
            from mxnet import np

            from archspec.gluon.precision import require_bfloat16, to_bfloat16, to_int8

            if variant == "bf16":
                require_bfloat16("bf16")
                self.blocks[variant] = to_bfloat16(self.net)
            elif variant == "int8":
                import numpy as onp

                self.blocks[variant] = to_int8(self.net, np.array(onp.load(str(self.calibration))))
            else:
                raise ValueError(f"no variant {variant!r}")
        return self.blocks[variant]

    def step(self, variant: str, kind: str, batch: int) -> Step:
        from mxnet import autograd, gluon, np, npx

        from archspec.train.loop import loss_and_outputs

        images, labels = inputs(self.net.spec.input.shape, batch, self.classes())
        x, y = np.array(images), np.array(labels)
        if kind == "forward":
            block = self.block(variant)
            return lambda: block(x).wait_to_read()
        if variant != "fp32":
            raise ValueError("the training step is measured in fp32")
        trainer = gluon.Trainer(self.net.collect_params(), "sgd", {"learning_rate": 1e-9})
        loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()

        def train() -> None:
            with autograd.record():  # auxiliary heads weighted as `archspec train` weighs them
                loss, _ = loss_and_outputs(self.net, self.net, loss_fn, x, y)
            loss.backward()
            trainer.step(batch)
            npx.waitall()

        return train

    def classes(self) -> int:
        from archspec import summarize

        return summarize(self.net.spec).output[0]

    def export(self, path: str) -> None:
        from archspec.gluon.export import export

        export(self.net, path, "onnx")


class TorchEngine:
    def __init__(self, spec: str, overrides: list[str], calibration: str | None):
        import torch

        from archspec import load_spec
        from torch_zoo import torch_network

        torch.set_num_threads(threads())
        torch.manual_seed(0)
        self.spec = load_spec(spec, overrides or None)
        self.nchw = torch_network(self.spec)
        self.channels_last = torch_network(self.spec).to(memory_format=torch.channels_last)
        self.channels_last.load_state_dict(self.nchw.state_dict())
        self.compiled: Any = None
        self.info = {"engine": "torch", "version": torch.__version__, "threads": torch.get_num_threads(),
                     "mkldnn": torch.backends.mkldnn.is_available()}

    def model(self, variant: str) -> Any:
        import torch

        if variant == "nchw":
            return self.nchw
        if variant == "compile":
            if self.compiled is None:
                self.compiled = torch.compile(self.channels_last)
            return self.compiled
        if variant == "channels_last":
            return self.channels_last
        raise ValueError(f"no variant {variant!r}")

    def step(self, variant: str, kind: str, batch: int) -> Step:
        import torch

        from torch_zoo import loss

        net = self.model(variant)
        images, labels = inputs(self.spec.input.shape, batch, 1)
        layout = torch.contiguous_format if variant == "nchw" else torch.channels_last
        x = torch.from_numpy(images).contiguous(memory_format=layout)
        net.train(kind == "train")
        if kind == "forward":
            def forward() -> None:
                with torch.inference_mode():
                    net(x)
            return forward
        with torch.no_grad():
            classes = self.nchw.eval()(x[:1]).shape[1]
        y = torch.from_numpy(labels % classes if classes > 1 else labels * 0).long()
        optimizer = torch.optim.SGD(net.parameters(), lr=1e-9)

        def train() -> None:
            optimizer.zero_grad()
            loss(self.nchw, net(x), y).backward()
            optimizer.step()

        return train


class ORTEngine:
    def __init__(self, spec: str, overrides: list[str], calibration: str | None, onnx_file: str):
        import onnxruntime as ort

        from archspec import load_spec

        self.spec = load_spec(spec, overrides or None)
        self.files = {"fp32": onnx_file}
        self.calibration = calibration
        self.sessions: dict[str, Any] = {}
        self.info = {"engine": "onnxruntime", "version": ort.__version__, "threads": threads()}

    def session(self, variant: str) -> Any:
        import onnxruntime as ort

        if variant not in self.sessions:
            if variant == "int8":
                self.files["int8"] = self.quantized()
            elif variant != "fp32":
                raise ValueError(f"no variant {variant!r}")
            options = ort.SessionOptions()
            options.intra_op_num_threads, options.inter_op_num_threads = threads(), 1
            self.sessions[variant] = ort.InferenceSession(self.files[variant], options,
                                                          providers=["CPUExecutionProvider"])
        return self.sessions[variant]

    def quantized(self) -> str:
        """Static QDQ quantization, per channel: INT8 weights, UINT8 activations (the x86 default), ranges
        calibrated (min/max) on the same images MXNet's INT8 is calibrated on."""
        import numpy as onp
        from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

        images = onp.load(str(self.calibration))

        class Reader(CalibrationDataReader):
            def __init__(self) -> None:
                self.batches = iter([{"data": images[i:i + 8]} for i in range(0, len(images), 8)])

            def get_next(self) -> Any:
                return next(self.batches, None)

        out = str(Path(self.files["fp32"]).with_suffix(".int8.onnx"))
        quantize_static(self.files["fp32"], out, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        return out

    def step(self, variant: str, kind: str, batch: int) -> Step:
        if kind != "forward":
            raise ValueError("ONNX Runtime is measured for inference")
        session = self.session(variant)
        x = inputs(self.spec.input.shape, batch, 1)[0]
        name = session.get_inputs()[0].name
        return lambda: session.run(None, {name: x})


def described(e: BaseException) -> str:
    """An exception in one line, for the report."""
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0][:300] if text else ''}"


def answer(engine: Any, request: dict[str, Any], failed: dict[str, str]) -> dict[str, Any]:
    if "export" in request:
        try:
            engine.export(request["export"])
        except Exception as e:  # a network the exporter cannot write: its ONNX Runtime peers are reported missing
            return {"error": f"ONNX export: {described(e)}"}
        return {"exported": request["export"]}
    variant = request["variant"]
    if variant in failed:
        return {"error": failed[variant]}
    try:
        step = engine.step(variant, request["kind"], request["batch"])
        return {"images_per_s": images_per_second(step, request["batch"], request["seconds"])}
    except Exception as e:  # a variant this machine cannot run (torch.compile without a compiler): reported
        failed[variant] = described(e)
        return {"error": failed[variant]}


def engine_for(args: argparse.Namespace) -> Any:
    if args.engine == "mxnet":
        return MXNetEngine(args.spec, args.set, args.calibration)
    if args.engine == "torch":
        return TorchEngine(args.spec, args.set, args.calibration)
    return ORTEngine(args.spec, args.set, args.calibration, args.onnx)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("engine", choices=("mxnet", "torch", "ort"))
    p.add_argument("spec")
    p.add_argument("--set", action="append", default=[], help="KEY=VALUE, as archspec's --set")
    p.add_argument("--calibration", help="a .npy file of N x C x H x W float32 images")
    p.add_argument("--onnx", help="the ONNX file (ort)")
    args = p.parse_args(argv)
    try:
        engine = engine_for(args)
    except ModuleNotFoundError as e:  # a peer that is not installed: the report names the extra that brings it
        print(json.dumps({"error": f"{e.name} is not installed: pip install -e '.[bench]'"}), flush=True)
        return
    except Exception as e:
        print(json.dumps({"error": described(e)}), flush=True)
        return
    print(json.dumps(engine.info), flush=True)
    failed: dict[str, str] = {}
    for line in sys.stdin:
        print(json.dumps(answer(engine, json.loads(line), failed)), flush=True)


if __name__ == "__main__":
    main()
