"""Where a training step of a built network (GoogLeNet by default; SGD, batch 64) goes, in a process of its own (the
settings below are read when MXNet is imported), at the spec's own input size.
Run: python bench/profile_step.py operators|primitives [--spec NAME|PATH] [--steps 5] [--batch 64]; prints JSON.

operators   MXNet's profiler, by operator: forward, backward (`_backward_*`), the optimizer's update, the rest
            (gradient sums, zeroing, copies). Bulked execution is off, so each operator shows on its own.
primitives  oneDNN's own timing of every primitive it runs (DNNL_VERBOSE): convolutions, pooling, ReLU, concat,
            and the reorders between oneDNN's blocked layouts and MXNet's plain NCHW, which the operator view
            hides inside the operators that need them; and the convolutions' own GFLOP/s (from oneDNN's
            problem descriptors) against a 2048x2048 SGEMM's in the same process.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import tempfile
import time

MODE = sys.argv[1] if len(sys.argv) > 1 else "operators"
STEPS = int(sys.argv[sys.argv.index("--steps") + 1]) if "--steps" in sys.argv else 5
BATCH = int(sys.argv[sys.argv.index("--batch") + 1]) if "--batch" in sys.argv else 64
SPEC = sys.argv[sys.argv.index("--spec") + 1] if "--spec" in sys.argv else "googlenet"
os.environ["MXNET_EXEC_BULK_EXEC_TRAIN"] = "0"
if MODE == "primitives":
    os.environ["DNNL_VERBOSE"] = os.environ["MKLDNN_VERBOSE"] = "1"

import archspec.gluon  # noqa: E402,F401  sets MXNet's defaults, before anything imports MXNet
from mxnet import autograd, gluon, np, npx, profiler  # noqa: E402

from archspec import build_model, load_spec, summarize  # noqa: E402
from archspec.spec.resolve import spec_path  # noqa: E402
from archspec.train.loop import loss_and_outputs  # noqa: E402
from timing import operator_times, profiler_file  # noqa: E402  bench/, the script's own folder



def step_function():
    spec = load_spec(spec_path(SPEC))  # a zoo name or a path, as the command line reads it
    net = build_model(spec)
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 1e-9})
    classes = summarize(spec).stages[-1].output[0]
    x, y = np.random.uniform(size=(BATCH, *spec.input.shape)), np.arange(BATCH) % classes
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()

    def step():
        with autograd.record():  # with auxiliary heads (inception-v3): theirs weighted, as `archspec train` does
            loss, _ = loss_and_outputs(net, net, loss_fn, x, y)
        loss.backward()
        trainer.step(BATCH)
        npx.waitall()
    return step


def group(op: str) -> str:
    if op.startswith("_backward_"):
        return "backward"
    if "update" in op:
        return "optimizer update"
    if op in ("add_n", "ElementWiseSum", "_grad_add", "_zeros_without_dtype", "_copy", "DeleteVariable",
              "SetValueOp", "_zeros"):
        return "gradient sums, zeroing, copies"
    return "forward"


def operators(step) -> dict:
    profiler.set_config(profile_symbolic=True, profile_imperative=True, aggregate_stats=True, filename=profiler_file())
    profiler.set_state("run")
    start = time.perf_counter()
    for _ in range(STEPS):
        step()
    wall = (time.perf_counter() - start) / STEPS
    profiler.set_state("stop")
    rows = [{**r, "group": group(r["operator"])} for r in operator_times(profiler.dumps(format="json", reset=True),
                                                                          STEPS)]
    return {"step_ms": wall * 1e3, "operators": rows, "groups": _shares(rows, "group")}


def primitives(step) -> dict:
    """oneDNN's verbose lines, written to standard output by the library itself: caught at the file descriptor."""
    with tempfile.TemporaryFile("w+") as log:
        with _stdout_to(log):
            for _ in range(STEPS):
                step()
        log.seek(0)
        result = parse_verbose(log.read())
    # the convolutions' own rate against SGEMM's in the same process: how far the kernels are from the peak, apart
    # from the step's other work (pooling, activations, reorders, sums: memory-bound, no multiply-accumulates)
    from run import matmul_gflops  # bench/run.py

    with open(os.devnull, "w") as quiet, _stdout_to(quiet):  # its own verbose lines
        sgemm = matmul_gflops()
    conv = [r for r in result["primitives"] if "flops" in r]
    conv_ms = sum(r["ms"] for r in conv) or 1.0
    gflops = sum(r["flops"] for r in conv) / conv_ms / 1e6
    result["convolutions"] = {"gflops": gflops, "sgemm_gflops": sgemm, "of_sgemm": gflops / sgemm,
                              "share_of_primitives": conv_ms / result["primitive_ms"]}
    return result


@contextlib.contextmanager
def _stdout_to(file):
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(file.fileno(), 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def parse_verbose(text: str) -> dict:
    """oneDNN's verbose lines -> ms a step by primitive kind, reorders by what they convert."""
    rows: dict[str, dict] = {}
    for line in text.splitlines():
        f = line.split(",")
        if len(f) < 6 or f[0] not in ("dnnl_verbose", "onednn_verbose") or f[1] != "exec":
            continue
        kind = f[3]
        if kind == "reorder":
            src, _, dst = f[6].partition(" ")
            what = "activations" if f[-2].startswith(f"{BATCH}x") else "weights"
            kind = f"reorder {what} {_layout(src)} -> {_layout(dst)}"
        elif kind in ("convolution", "pooling_v2", "pooling", "eltwise", "inner_product"):
            kind = f"{kind} {f[5]}"
        row = rows.setdefault(kind, {"primitive": kind, "calls": 0.0, "ms": 0.0})
        row["calls"] += 1 / STEPS
        row["ms"] += float(f[-1]) / STEPS
        if f[3] == "convolution":  # forward, backward_data and backward_weights: each the forward's MACs
            row["flops"] = row.get("flops", 0.0) + 2 * _convolution_macs(f[-2]) / STEPS
    ordered = sorted(rows.values(), key=lambda r: -r["ms"])
    total = sum(r["ms"] for r in ordered) or 1.0
    for r in ordered:
        r["share"] = r["ms"] / total
    return {"primitive_ms": total, "primitives": ordered}


def _convolution_macs(problem: str) -> int:
    """`g32mb32_ic64oc192_ih24oh24kh3sh1dh0ph1_iw24ow24kw3sw1dw0pw1` (oneDNN's problem descriptor) -> MACs.
    Groups (`g32`: depthwise here) divide the input channels each output reads."""
    m = re.match(r"(?:g(\d+))?mb(\d+)_ic(\d+)oc(\d+)_(?:id\d+od(\d+)kd(\d+)\w*?_)?(?:ih\d+oh(\d+)kh(\d+)\w*?_)?"
                 r"iw\d+ow(\d+)kw(\d+)", problem)  # 3-D, 2-D or 1-D
    if not m:
        raise ValueError(f"not a convolution descriptor: {problem}")
    g, mb, ic, oc, od, kd, oh, kh, ow, kw = (int(v) if v else 1 for v in m.groups())
    return mb * oc * od * oh * ow * (ic // g) * kd * kh * kw


def _layout(desc: str) -> str:
    """`src_f32::blocked:aBcd16b:f0` -> `f32 aBcd16b` (abcd is MXNet's plain NCHW)."""
    parts = desc.split(":")
    return f"{parts[0].split('_')[-1]} {parts[3] if len(parts) > 3 else desc}"


def _shares(rows: list, key: str) -> dict:
    total = sum(r["ms"] for r in rows) or 1.0
    out: dict[str, float] = {}
    for r in rows:
        out[r[key]] = out.get(r[key], 0.0) + r["ms"] / total
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def main() -> None:
    step = step_function()
    for _ in range(3):
        step()
    result = operators(step) if MODE == "operators" else primitives(step)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
