"""GoogLeNet at 1x96x96: archspec's built network against the same network written by hand, in one process,
interleaved. Run: python bench/run.py [--repeats 5] [--out bench/results/NAME.json]. Not a test: it reports
ratios with their spread, it does not assert (tests/test_bench.py only checks that it runs).

Models, all with the same weights:
  built   build_model("specs/googlenet.yaml"): the library's default (hybridized, static_alloc)
  seed    the seed's own imperative nn.Block GoogLeNet (bench/googlenet_reference.py)
  hand    the same layers as HybridBlocks, hybridize(static_alloc=True, static_shape=True)
  hand2   a second instance of `hand`: identical code and weights, so hand2/hand shows how much two copies of
          the same network differ in one process (memory placement), the noise floor of every ratio
Every measurement waits for its result (as a user reading a prediction or a loss does). Each repeat runs
every case for every model, in a rotating order; ratios are taken within a repeat.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
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
from googlenet_reference import googlenet  # noqa: E402
from timing import images_per_second  # noqa: E402

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


def summary(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def measure(nets: dict, cases, repeats: int, seconds: float) -> dict:
    trainers = {name: gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 1e-9}) for name, net in nets.items()}
    raw = {f"{kind}@{batch}": {name: [] for name in nets} for kind, batch in cases}
    names = list(nets)
    for r in range(repeats):
        for kind, batch in cases:
            for name in names[r % len(names):] + names[:r % len(names)]:  # rotate who goes first
                raw[f"{kind}@{batch}"][name].append(rate(nets[name], kind, batch, seconds, trainers[name]))
    return raw


PAIRS = (("built", "seed"), ("built", "hand"), ("hand2", "hand"))


def ratios(raw: dict) -> dict:
    return {case: {f"{a}/{b}": summary([x / y for x, y in zip(by[a], by[b])]) for a, b in PAIRS}
            for case, by in raw.items()}


def machine() -> dict:
    info = {"python": platform.python_version(), "mxnet": mx.__version__, "platform": platform.platform(),
            "cores": os.cpu_count(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            "mkldnn": mx.runtime.Features().is_enabled("MKLDNN")}
    try:
        text = Path("/proc/cpuinfo").read_text()
        info["cpu"] = next(line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name"))
        info["mhz"] = float(next(line.split(":", 1)[1] for line in text.splitlines() if line.startswith("cpu MHz")))
        flags = next(line for line in text.splitlines() if line.startswith("flags"))
        info["avx512"] = " avx512f" in flags
        info["avx512_bf16"], info["avx512_vnni"] = " avx512_bf16" in flags, " avx512_vnni" in flags
    except (OSError, StopIteration):
        pass
    return info


def matmul_gflops(seconds: float = 1.0) -> float:
    """What this machine's BLAS (oneDNN/MKL under MXNet) achieves on a large float32 matrix product:
    the practical peak the network's rate is compared with."""
    a, b = np.random.uniform(size=(2048, 2048)), np.random.uniform(size=(2048, 2048))
    np.dot(a, b).wait_to_read()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or n < 2:
        np.dot(a, b).wait_to_read()
        n += 1
    return n * 2 * 2048 ** 3 / (time.perf_counter() - start) / 1e9


def profile(batch: int = 32, steps: int = 5) -> list[dict]:
    """Where the forward time goes: MXNet's profiler, aggregated by operator. The network runs imperatively,
    the same kernels one by one (a cached graph's bulked segments would show as one entry)."""
    from mxnet import profiler

    net = build_model(SPEC, hybridize=False)
    x = np.random.uniform(size=(batch, 1, 96, 96))
    net(x).wait_to_read()
    profiler.set_config(profile_all=True, aggregate_stats=True, filename=os.devnull)
    profiler.set_state("run")
    for _ in range(steps):
        net(x).wait_to_read()
    profiler.set_state("stop")
    stats = json.loads(profiler.dumps(format="json", reset=True))
    rows = []
    for domain, ops in stats.get("Time", {}).items():
        if domain != "operator":  # not the C API calls that wait for them
            continue
        for op, s in ops.items():
            rows.append({"operator": op, "calls": s["Count"], "ms": s["Total"]})
    total = sum(r["ms"] for r in rows) or 1.0
    rows = sorted(rows, key=lambda r: -r["ms"])
    return [{**r, "share": r["ms"] / total} for r in rows[:8]]


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


def torch_peer(repeats: int, seconds: float, smoke: bool) -> dict | None:
    """The same network in PyTorch, in its own process (bench/torch_googlenet.py)."""
    if importlib.util.find_spec("torch") is None:
        return None
    args = [sys.executable, str(ROOT / "bench" / "torch_googlenet.py"), "--repeats", str(repeats),
            "--seconds", str(seconds)] + (["--smoke"] if smoke else [])
    done = subprocess.run(args, capture_output=True, text=True)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1:]}
    return json.loads(done.stdout)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--seconds", type=float, default=1.5, help="minimum time per measurement")
    p.add_argument("--smoke", action="store_true", help="one tiny repeat of each kind of measurement")
    p.add_argument("--no-torch", action="store_true")
    p.add_argument("--precision", action="store_true", help="also try bfloat16 (AMP) and INT8 inference")
    p.add_argument("--out", type=Path, help="write the raw figures as JSON here")
    args = p.parse_args(argv)
    if args.smoke:
        args.repeats, args.seconds = 1, 0.0
    nets = models()
    raw = measure(nets, SMOKE_CASES if args.smoke else CASES, args.repeats, args.seconds)
    macs = summarize(load_spec(SPEC)).macs
    result = {
        "machine": machine(), "model": "googlenet 1x96x96", "macs_per_image": macs,
        "images_per_s": {case: {name: summary(v) for name, v in by.items()} for case, by in raw.items()},
        "ratios": ratios(raw), "raw_images_per_s": raw,
        "matmul_gflops": matmul_gflops(0.1 if args.smoke else 1.0),
        "profile_forward_32": profile(2 if args.smoke else 32, 1 if args.smoke else 5),
        "specs": spec_timing(), "build": build_timing(1 if args.smoke else 5),
    }
    result["gflops"] = {case: 2 * macs * (3 if case.startswith("train") else 1) * by["built"]["median"] / 1e9
                        for case, by in result["images_per_s"].items()}
    if not args.no_torch:
        result["torch"] = torch_peer(args.repeats, args.seconds, args.smoke)
    if args.precision:
        from precision import reduced_precision

        result["precision"] = reduced_precision(nets["built"], smoke=args.smoke)
    text = json.dumps(result, indent=1)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(report(result))
    return result


def report(r: dict) -> str:
    lines = [f"GoogLeNet 1x96x96 on {r['machine'].get('cpu', '?')}, {r['machine']['cores']} cores, "
             f"OMP_NUM_THREADS={r['machine']['omp_num_threads']}, MXNet {r['machine']['mxnet']}", "",
             f"{'case':<12}{'built img/s':>12}{'seed':>10}{'hand':>10}  " + "".join(f"{a}/{b} (min-max)".ljust(23)
                                                                           for a, b in PAIRS)]
    for case, by in r["images_per_s"].items():
        rs = r["ratios"][case]
        lines.append(f"{case:<12}{by['built']['median']:>12,.1f}{by['seed']['median']:>10,.1f}"
                     f"{by['hand']['median']:>10,.1f}  " + "".join(_ratio(rs[f"{a}/{b}"]) + "   " for a, b in PAIRS))
    lines.append("")
    lines.append("GFLOP/s (built): " + ", ".join(f"{c} {g:.1f}" for c, g in r["gflops"].items())
                 + f"; 2048^2 matmul: {r['matmul_gflops']:.1f}")
    lines.append("forward@32 time by operator: " + ", ".join(f"{p['operator']} {p['share']:.0%}"
                                                            for p in r["profile_forward_32"][:5]))
    s, b = r["specs"], r["build"]
    lines.append(f"{s['specs']} specs loaded, validated and analysed in {s['in_process_s']['median']:.3f} s "
                 f"(a cold `archspec validate` {s['archspec_validate_cold_s']['median']:.2f} s); "
                 f"build {b['build_s']['median']:.3f} s + first call {b['first_call_s']['median']:.3f} s")
    if r.get("torch") and "images_per_s" in r["torch"]:
        t, ours = r["torch"]["images_per_s"], r["images_per_s"]
        lines.append("PyTorch " + r["torch"]["version"] + " (own process): " + ", ".join(
            f"{case} {t[case]['median']:,.1f} img/s (built/torch {ours[case]['built']['median'] / t[case]['median']:.2f})"
            for case in t if case in ours))
    if r.get("precision"):
        p = r["precision"]
        lines.append(f"reduced precision (GoogLeNet trained {p['trained_epochs']} epochs on digits, "
                     f"{p['test_examples']} test images):")
        for mode in ("float32", "bfloat16", "int8"):
            m = p[mode]
            lines.append(f"  {mode:<9} forward@32 {m['images_per_s_batch32']:,.1f} img/s ({m['speedup']:.2f}x), test "
                         f"accuracy {m['test_accuracy']:.1%}, top-1 agreement {m['top1_agreement']:.1%}, "
                         f"max |logit diff| {m['max_abs_diff']:.3g} (max |logit| {m['max_abs_logit']:.3g})")
    return "\n".join(lines)


def _ratio(s: dict) -> str:
    return f"{s['median']:.2f} ({s['min']:.2f}-{s['max']:.2f})".ljust(20)


if __name__ == "__main__":
    main()
