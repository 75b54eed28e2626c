"""GoogLeNet at 1x96x96: archspec's built network against the same network written by hand, in one process,
interleaved. Run: python bench/run.py [--repeats 5] [--out bench/results/NAME.json]. Not a test: it reports
ratios with their spread, it does not assert (tests/test_bench.py only checks that it runs).

Models, all with the same weights:
  built   build_model("specs/googlenet.yaml"): the library's default (hybridized, static_alloc)
  seed    the seed's own imperative nn.Block GoogLeNet (bench/googlenet_reference.py)
  hand    the same layers as HybridBlocks, hybridize(static_alloc=True, static_shape=True)
  hand2   a second instance of `hand`: identical code and weights, so hand2/hand shows how much two copies of
          the same network differ in one process (memory placement), the noise floor of every ratio
  built_bf16  (training only, CPUs with AVX-512 BF16) `built` trained in mixed precision, as `archspec train
          --precision bf16` trains: bfloat16 compute, float32 weights and updates
and the peer, PyTorch's D2L GoogLeNet in its own process (bench/torch_googlenet.py), asked for one measurement
at a time so that it takes its turn in the same rotation: torch_nchw (its default layout), torch_cl
(channels_last, its fastest eager setting on a CPU), torch_compile (channels_last under torch.compile, unless
--no-compile) and, for training, torch_bf16 (channels_last under bfloat16 autocast).
Every measurement waits for its result (as a user reading a prediction or a loss does). Each repeat runs
every case for every model, in a rotating order; ratios are taken within a repeat.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import archspec.gluon  # noqa: E402,F401  sets MXNet's thread count, before anything imports MXNet
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import mxnet as mx  # noqa: E402
from mxnet import autograd, gluon, np, npx  # noqa: E402

from archspec import build_model, load_spec, summarize  # noqa: E402
from archspec.gluon.precision import mixed_bfloat16, supports_bfloat16  # noqa: E402
from googlenet_reference import googlenet  # noqa: E402
from timing import cpu, images_per_second, operator_times, profiler_file, summary  # noqa: E402

SPEC = ROOT / "specs" / "googlenet.yaml"
CASES = [("forward", 1), ("forward", 32), ("forward", 128), ("train", 64)]
SMOKE_CASES = [("forward", 1), ("train", 2)]


def models() -> dict:
    npx.set_np()
    built = build_model(SPEC)
    seed = googlenet()
    hand, hand2 = googlenet(hybrid=True), googlenet(hybrid=True)
    for net in (hand, hand2):
        net.hybridize(static_alloc=True, static_shape=True)
    nets = {"built": built, "seed": seed, "hand": hand, "hand2": hand2}
    source = list(built.collect_params().values())
    for net in nets.values():
        net(np.zeros((1, 1, 96, 96)))
        for s, d in zip(source, net.collect_params().values()):
            d.set_data(s.data())
    if supports_bfloat16():
        twin = build_model(SPEC)
        for s, d in zip(source, twin.collect_params().values()):
            d.set_data(s.data())
        nets["built_bf16"] = mixed_bfloat16(twin)  # trains twin's float32 parameters
    return nets


def rate(net, kind: str, batch: int, seconds: float, trainer=None) -> float:
    """Images per second, over at least `seconds` (after a warm-up step)."""
    x = np.random.uniform(size=(batch, 1, 96, 96))
    y = np.arange(batch) % 10
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()

    def step():
        if kind == "forward":
            net(x).wait_to_read()
        else:
            with autograd.record():
                loss = loss_fn(net(x), y)
            loss.backward()
            trainer.step(batch)
            npx.waitall()

    return images_per_second(step, batch, seconds)


class TorchPeer:
    """bench/torch_googlenet.py in its own process, measuring one (variant, case) when asked."""

    VARIANTS = {"torch_nchw": "nchw", "torch_cl": "channels_last", "torch_compile": "compile", "torch_bf16": "bf16"}

    def __init__(self, compile: bool):
        self.process = subprocess.Popen([sys.executable, str(ROOT / "bench" / "torch_googlenet.py")],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.info = json.loads(self.process.stdout.readline())
        self.info["errors"] = {}
        self.names = [n for n in self.VARIANTS if compile or n != "torch_compile"]

    def rate(self, name: str, kind: str, batch: int, seconds: float):
        request = {"variant": self.VARIANTS[name], "kind": kind, "batch": batch, "seconds": seconds}
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        answer = json.loads(self.process.stdout.readline())
        if "error" in answer:
            self.info["errors"][name] = answer["error"]
        return answer.get("images_per_s")

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait()


def torch_peer(compile: bool):
    if importlib.util.find_spec("torch") is None:
        return None
    return TorchPeer(compile)


BF16_ONLY = {"built_bf16", "torch_bf16"}  # training at one batch size: what --precision bf16 is for


def measure(nets: dict, cases, repeats: int, seconds: float, peer=None) -> dict:
    trainers = {name: gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 1e-9}) for name, net in nets.items()}
    names = list(nets) + (peer.names if peer else [])
    raw = {f"{kind}@{batch}": {name: [] for name in names if kind == "train" or name not in BF16_ONLY}
           for kind, batch in cases}
    for r in range(repeats):
        for kind, batch in cases:
            here = list(raw[f"{kind}@{batch}"])
            for name in here[r % len(here):] + here[:r % len(here)]:  # rotate who goes first
                value = (peer.rate(name, kind, batch, seconds) if name not in nets
                         else rate(nets[name], kind, batch, seconds, trainers[name]))
                raw[f"{kind}@{batch}"][name].append(value)
    return {case: {name: v for name, v in by.items() if None not in v} for case, by in raw.items()}


PAIRS = (("built", "seed"), ("built", "hand"), ("hand2", "hand"), ("built", "torch_nchw"), ("built", "torch_cl"),
         ("built", "torch_compile"), ("built_bf16", "built"), ("built_bf16", "torch_bf16"), ("torch_bf16", "torch_cl"))


def ratios(raw: dict) -> dict:
    return {case: {f"{a}/{b}": summary([x / y for x, y in zip(by[a], by[b])]) for a, b in PAIRS if a in by and b in by}
            for case, by in raw.items()}


def machine() -> dict:
    return {"python": platform.python_version(), "mxnet": mx.__version__, "platform": platform.platform(),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "mkldnn": mx.runtime.Features().is_enabled("MKLDNN"),
            **cpu()}


def matmul_gflops(seconds: float = 1.0) -> float:
    """What oneDNN, which runs the network's convolutions, achieves on a large float32 matrix product (its inner
    product, MXNet's FullyConnected): the practical peak the network's rate is compared with. Not `np.dot`, which
    MXNet's pip build runs on OpenBLAS at a quarter of that rate here (84 against 359 GFLOP/s)."""
    a, b = np.random.uniform(size=(2048, 2048)), np.random.uniform(size=(2048, 2048))

    def product() -> None:
        npx.fully_connected(a, b, num_hidden=2048, no_bias=True).wait_to_read()

    product()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or n < 2:
        product()
        n += 1
    return n * 2 * 2048 ** 3 / (time.perf_counter() - start) / 1e9


def profile(batch: int = 32, steps: int = 5) -> list[dict]:
    """Where the forward time goes: MXNet's profiler, aggregated by operator. The network runs imperatively,
    the same kernels one by one (a cached graph's bulked segments would show as one entry)."""
    from mxnet import profiler

    net = build_model(SPEC, hybridize=False)
    x = np.random.uniform(size=(batch, 1, 96, 96))
    net(x).wait_to_read()
    profiler.set_config(profile_all=True, aggregate_stats=True, filename=profiler_file())
    profiler.set_state("run")
    for _ in range(steps):
        net(x).wait_to_read()
    profiler.set_state("stop")
    return operator_times(profiler.dumps(format="json", reset=True), steps)[:8]


def spec_timing() -> dict:
    """Loading, validating and analysing every spec, in a fresh process that never imports MXNet."""
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "analysis.py"), "--repeat", "3"],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def build_timing(repeats: int = 5) -> dict:
    builds, firsts = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        net = build_model(SPEC)
        builds.append(time.perf_counter() - start)
        start = time.perf_counter()
        net(np.zeros((1, 1, 96, 96))).wait_to_read()  # hybridize traces the graph on the first call
        firsts.append(time.perf_counter() - start)
    return {"build_s": summary(builds), "first_call_s": summary(firsts)}


def step_profile(smoke: bool) -> dict:
    """Where a training step goes (bench/profile_step.py, in processes of their own: its settings are read when
    MXNet is imported): by MXNet operator, and by oneDNN primitive with the layout reorders."""
    steps = ["--steps", "1", "--batch", "2"] if smoke else ["--steps", "3"]
    out = {}
    for mode in ("operators", "primitives"):
        done = subprocess.run([sys.executable, str(ROOT / "bench" / "profile_step.py"), mode, *steps],
                              capture_output=True, text=True, check=True)
        out.update(json.loads(done.stdout.strip().splitlines()[-1]))  # oneDNN's own lines come before
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--seconds", type=float, default=1.5, help="minimum time per measurement")
    p.add_argument("--smoke", action="store_true", help="one tiny repeat of each kind of measurement")
    p.add_argument("--no-torch", action="store_true", help="leave out the PyTorch peer")
    p.add_argument("--no-compile", action="store_true", help="leave out torch.compile (minutes of compiling)")
    p.add_argument("--precision", action="store_true", help="also bfloat16 and INT8 inference and bfloat16 "
                   "training on the digits (bench/precision.py; about 25 minutes)")
    p.add_argument("--out", type=Path, help="write the raw figures as JSON here")
    args = p.parse_args(argv)
    if args.smoke:
        args.repeats, args.seconds = 1, 0.0
    nets = models()
    peer = None if args.no_torch else torch_peer(compile=not (args.no_compile or args.smoke))
    try:
        raw = measure(nets, SMOKE_CASES if args.smoke else CASES, args.repeats, args.seconds, peer)
    finally:
        if peer:
            peer.close()
    macs = summarize(load_spec(SPEC)).macs
    result = {
        "machine": machine(), "model": "googlenet 1x96x96", "macs_per_image": macs,
        "images_per_s": {case: {name: summary(v) for name, v in by.items()} for case, by in raw.items()},
        "ratios": ratios(raw), "raw_images_per_s": raw,
        "matmul_gflops": matmul_gflops(0.1 if args.smoke else 1.0),
        "profile_forward_32": profile(2 if args.smoke else 32, 1 if args.smoke else 5),
        "profile_train_64": step_profile(args.smoke),
        "specs": spec_timing(), "build": build_timing(1 if args.smoke else 5),
        "torch": peer.info if peer else None,
    }
    result["roofline"] = roofline(result)
    if args.precision:
        from precision import reduced_precision

        result["precision"] = reduced_precision(nets["built"], smoke=args.smoke)
    text = json.dumps(result, indent=1)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(report(result))
    return result


def roofline(r: dict) -> dict:
    """Achieved GFLOP/s (2 FLOPs a multiply-accumulate; a training step does 3x a forward's work: forward,
    gradient of the input, gradient of the weights) against the SGEMM rate measured on the same machine."""
    out = {}
    for case, by in r["images_per_s"].items():
        flops = 2 * r["macs_per_image"] * (3 if case.startswith("train") else 1)
        out[case] = {name: {"gflops": flops * m["median"] / 1e9, "of_sgemm": flops * m["median"] / 1e9
                            / r["matmul_gflops"]} for name, m in by.items() if name in ("built", "torch_cl")}
    return out


def report(r: dict) -> str:
    m, cases = r["machine"], list(r["images_per_s"])
    lines = [f"GoogLeNet 1x96x96 on {m.get('cpu', '?')}, {m['cores']} cores (AVX-512 BF16: {m.get('avx512_bf16')}), "
             f"OMP_NUM_THREADS={m['omp_num_threads']}, MXNet {m['mxnet']}"
             + (f", PyTorch {r['torch']['version']}" if r.get("torch") else ""), "",
             "images/s, median of the repeats:", f"{'model':<15}" + "".join(f"{c:>13}" for c in cases)]
    names = list(dict.fromkeys(n for by in r["images_per_s"].values() for n in by))
    for name in names:
        lines.append(f"{name:<15}" + "".join(f"{r['images_per_s'][c][name]['median']:>13,.1f}"
                                             if name in r["images_per_s"][c] else f"{'-':>13}" for c in cases))
    lines += ["", "ratios within a repeat, median (min-max); hand2/hand is the noise control (same code twice):",
              f"{'ratio':<23}" + "".join(f"{c:>20}" for c in cases)]
    for a, b in PAIRS:
        key = f"{a}/{b}"
        if any(key in r["ratios"][c] for c in cases):
            lines.append(f"{key:<23}" + "".join(f"{_ratio(r['ratios'][c][key]):>20}" if key in r["ratios"][c]
                                                else f"{'-':>20}" for c in cases))
    if r.get("torch") and r["torch"].get("errors"):
        lines += [f"{name} did not run here: {error}" for name, error in r["torch"]["errors"].items()]
    lines.append("")
    lines.append(f"roofline: SGEMM 2048^2 through MXNet's oneDNN {r['matmul_gflops']:.1f} GFLOP/s; achieved "
                 + ", ".join(f"{c} {name} {v['gflops']:.1f} ({v['of_sgemm']:.0%})"
                             for c, by in r["roofline"].items() for name, v in by.items()))
    lines.append("forward@32 time by operator: " + ", ".join(f"{p['operator']} {p['share']:.0%}"
                                                            for p in r["profile_forward_32"][:5]))
    t = r["profile_train_64"]
    lines.append(f"training step ({t['step_ms']:.0f} ms profiled) by MXNet operator group: "
                 + ", ".join(f"{g} {share:.0%}" for g, share in t["groups"].items()))
    lines.append("  by oneDNN primitive: " + ", ".join(f"{p['primitive']} {p['share']:.0%}"
                                                      for p in t["primitives"][:8]))
    reorders = sum(p["share"] for p in t["primitives"] if p["primitive"].startswith("reorder"))
    lines.append(f"  layout reorders: {reorders:.0%} of oneDNN's time")
    s, b = r["specs"], r["build"]
    lines.append(f"{s['specs']} specs loaded, validated and analysed in {s['in_process_s']['median']:.3f} s "
                 f"(a cold `archspec validate` {s['archspec_validate_cold_s']['median']:.2f} s); "
                 f"build {b['build_s']['median']:.3f} s + first call {b['first_call_s']['median']:.3f} s")
    if r.get("precision"):
        from precision import report as precision_report

        lines += precision_report(r["precision"])
    return "\n".join(lines)


def _ratio(s: dict) -> str:
    return f"{s['median']:.2f} ({s['min']:.2f}-{s['max']:.2f})"


if __name__ == "__main__":
    main()
