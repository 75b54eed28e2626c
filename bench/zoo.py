"""Every zoo spec against its peers (issue 25): archspec's built network (MXNet, its OpenMP threads waiting
PASSIVE and ACTIVE) against the spec's PyTorch twin (bench/torch_zoo.py) in NCHW, channels_last and under
torch.compile; forward@1, forward@B and a training step at batch T; the training step again with one CPU-bound
neighbour process; and for the deployment specs, MXNet fp32/bf16/INT8 beside ONNX Runtime fp32/INT8 on
archspec's own ONNX export. Not a test: it reports, it does not assert (tests/test_bench.py runs --quick).

Noise control, as bench/run.py's: each engine in its own process (bench/zoo_worker.py), asked for one
measurement at a time so the engines take turns; each measurement warms up, then runs for at least --seconds;
every repeat runs every case for every engine in a rotating order; ratios are taken within a repeat, and their
median and spread (min-max) reported. Specs run one after another (only one spec's processes alive at a time).

Run:   python bench/zoo.py [--specs googlenet resnet18 ...] [--repeats 3] [--seconds 1] [--out OUT]
       (writes bench/results/zoo-<date>.json and .md unless --out says otherwise)
Quick: python bench/zoo.py --quick [--compile] [--out OUT]  (googlenet at 32x32, batch 2, one repeat, no
       torch.compile unless asked: that every engine and case runs, not figures; writes only with --out)
Plan:  python bench/zoo.py --estimate (the run time the options would take, without running)
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from timing import cpu, summary  # noqa: E402  bench/

from archspec import load_spec, summarize  # noqa: E402  the spec core: no MXNet here

DEFAULT_SPECS = ("googlenet", "googlenet-bn", "resnet18", "mobilenetv2", "densenet", "inception-v3")
DEPLOY_SPECS = ("googlenet", "resnet18")
QUICK_SIZE = ["input.height=32", "input.width=32"]
# who runs what: name -> (worker, variant)
ENGINES = {"mxnet_passive": ("mxnet_passive", "fp32"), "mxnet_active": ("mxnet_active", "fp32"),
           "torch_nchw": ("torch", "nchw"), "torch_cl": ("torch", "channels_last"),
           "torch_compile": ("torch", "compile"), "mxnet_bf16": ("mxnet_passive", "bf16"),
           "mxnet_int8": ("mxnet_passive", "int8"), "ort_fp32": ("ort", "fp32"), "ort_int8": ("ort", "int8")}
MXNET = ("mxnet_passive", "mxnet_active")
PEERS = ("torch_nchw", "torch_cl", "torch_compile")
DEPLOY_PAIRS = (("mxnet_passive", "ort_fp32"), ("mxnet_int8", "ort_int8"), ("mxnet_int8", "ort_fp32"),
                ("mxnet_bf16", "mxnet_passive"), ("ort_int8", "ort_fp32"))
CONTENDED = ("mxnet_passive", "mxnet_active", "torch_cl")
BF16_SKIPPED = ("bf16 not measured: this CPU has no AVX-512 BF16, the only bf16 MXNet 1.9.1's oneDNN runs "
                "(elsewhere it refuses bf16 or emulates it, slower than fp32)")
ASSUMED_GFLOPS = 100.0  # --estimate's rate of 2 cores (bench/results/googlenet-cpu-2cores.txt: 100-280)


class WorkerExited(RuntimeError):
    """A worker process ended while asked for something (killed for memory, crashed in an engine)."""


class Worker:
    """bench/zoo_worker.py for one engine and spec, in its own process, measuring one thing when asked, and
    stopped (SIGSTOP) between requests: an idle MXNet process under OMP_WAIT_POLICY=ACTIVE keeps its OpenMP
    threads spinning (libgomp spins for ~30 billion iterations), which slowed every other engine 3-20x on 2 cores
    (a first --quick run). Only the process being measured runs."""

    def __init__(self, engine: str, spec: Path, options: list[str], env: dict[str, Optional[str]]):
        self.name = f"{engine} worker for {spec.stem}"
        self.process = subprocess.Popen([sys.executable, str(ROOT / "bench" / "zoo_worker.py"), engine, str(spec),
                                         *options], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                        env={k: v for k, v in {**os.environ, **env}.items() if v is not None})
        self.info = self.receive()
        self.process.send_signal(signal.SIGSTOP)

    def ask(self, request: dict[str, Any]) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.send_signal(signal.SIGCONT)
        try:
            self.process.stdin.write(json.dumps(request) + "\n")
            self.process.stdin.flush()
            return self.receive()
        except BrokenPipeError:  # it died since its last answer (killed by a signal, or for memory)
            raise WorkerExited(f"{self.name} exited ({self.process.wait()})") from None
        finally:
            self.process.send_signal(signal.SIGSTOP)

    def receive(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise WorkerExited(f"{self.name} exited ({self.process.wait()})")
        return json.loads(line)

    def close(self) -> None:
        self.process.send_signal(signal.SIGCONT)
        if self.process.stdin:
            with contextlib.suppress(BrokenPipeError):  # a worker that died mid-run has been reported already
                self.process.stdin.close()
        self.process.wait()


class Neighbour:
    """One CPU-bound process beside the measurement (a Python busy loop), as a search worker or a data loader
    would be: started before the contended measurement, ended after it."""

    def __enter__(self) -> Neighbour:
        self.process = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        time.sleep(0.2)  # scheduled before the measurement starts
        return self

    def __exit__(self, *exc: Any) -> None:
        self.process.kill()
        self.process.wait()


@dataclass
class Plan:
    """What one spec is measured on: its cases, and who runs each."""

    name: str
    path: Path
    overrides: list[str]
    cases: dict[str, tuple[str, int, bool]] = field(default_factory=dict)  # case -> (kind, batch, contended)
    who: dict[str, list[str]] = field(default_factory=dict)  # case -> engine names


def plan(name: str, args: argparse.Namespace, bf16: bool) -> Plan:
    path = ROOT / "specs" / f"{name}.yaml"
    overrides = QUICK_SIZE if args.quick else []
    p = Plan(name, path, overrides)
    peers = [n for n in PEERS if args.compile or n != "torch_compile"]
    deploy = name in args.deploy_specs
    deployed = ["mxnet_int8", "ort_fp32", "ort_int8"] + (["mxnet_bf16"] if bf16 else [])
    train_batch = fitting_batch(summarize(load_spec(path, overrides or None)).memory, args.train_batch, args.memory_gb)
    for batch in dict.fromkeys((1, args.batch)):
        p.cases[f"forward@{batch}"] = ("forward", batch, False)
        p.who[f"forward@{batch}"] = [*MXNET, *peers, *(deployed if deploy else [])]
    p.cases[f"train@{train_batch}"] = ("train", train_batch, False)
    p.who[f"train@{train_batch}"] = [*MXNET, *peers]
    if args.contended:
        p.cases[f"train@{train_batch}+neighbour"] = ("train", train_batch, True)
        p.who[f"train@{train_batch}+neighbour"] = list(CONTENDED)
    return p


def fitting_batch(memory_per_example: int, batch: int, gigabytes: float) -> int:
    """The training batch, halved until a step's memory (about 3x the forward activations: kept for the
    backward pass, their gradients, workspace) fits `gigabytes` per process."""
    while batch > 1 and 3 * memory_per_example * batch > gigabytes * 2 ** 30:
        batch //= 2
    return batch


def start(p: Plan, workdir: Path, threads: int) -> tuple[dict[str, Worker], dict[str, str]]:
    """The processes `p` needs, and why those that could not start did not (a peer not installed, a network
    the ONNX exporter cannot write); the ONNX export and the calibration images first when ONNX Runtime is one.
    archspec's own process must start."""
    import numpy as onp

    names = {n for who in p.who.values() for n in who}
    options = [f"--set={o}" for o in p.overrides]
    spec_input = load_spec(p.path, p.overrides or None).input.shape
    calibration = workdir / f"{p.name}-calibration.npy"  # the same images calibrate both INT8 engines
    onp.save(calibration, onp.random.default_rng(1).uniform(size=(32,) + spec_input).astype("float32"))
    options.append(f"--calibration={calibration}")
    common: dict[str, Optional[str]] = {"OMP_NUM_THREADS": str(threads)}
    peer: dict[str, Optional[str]] = {"OMP_WAIT_POLICY": None}  # peers wait as their OpenMP does by default
    workers: dict[str, Worker] = {}
    failed: dict[str, str] = {}

    def launch(key: str, engine: str, more: list[str], env: dict[str, Optional[str]]) -> None:
        try:
            worker = Worker(engine, p.path, options + more, {**common, **env})
        except WorkerExited as e:
            failed[key] = str(e)
            return
        if "error" in worker.info:
            worker.close()
            failed[key] = f"did not start: {worker.info['error']}"
        else:
            workers[key] = worker

    launch("mxnet_passive", "mxnet", [], {"OMP_WAIT_POLICY": "PASSIVE"})
    if "mxnet_passive" in failed:
        raise RuntimeError(f"archspec's network {p.name}: {failed['mxnet_passive']}")
    if "mxnet_active" in names:
        launch("mxnet_active", "mxnet", [], {"OMP_WAIT_POLICY": "ACTIVE"})
    if names & {"torch_nchw", "torch_cl", "torch_compile"}:
        launch("torch", "torch", [], peer)
    if names & {"ort_fp32", "ort_int8"}:
        onnx_file = workdir / f"{p.name}.onnx"
        done = workers["mxnet_passive"].ask({"export": str(onnx_file)})
        if "error" in done:
            failed["ort"] = done["error"]
        else:
            launch("ort", "ort", [f"--onnx={onnx_file}"], peer)
    return workers, failed


def measure_spec(p: Plan, workers: dict[str, Worker], failed: dict[str, str], repeats: int,
                 seconds: float) -> tuple[dict, dict]:
    """{case: {engine: [images/s a repeat]}} in a rotating order, and the errors of engines that cannot run
    (`failed`: the workers that did not start)."""
    raw: dict[str, dict[str, list[float]]] = {case: {n: [] for n in who} for case, who in p.who.items()}
    errors: dict[str, str] = {}
    for r in range(repeats):
        for case, (kind, batch, contended) in p.cases.items():
            here = p.who[case]
            for name in here[r % len(here):] + here[:r % len(here)]:  # rotate who goes first
                worker, variant = ENGINES[name]
                if worker in failed:
                    errors[name] = failed[worker]
                    continue
                request = {"variant": variant, "kind": kind, "batch": batch, "seconds": seconds}
                try:
                    with Neighbour() if contended else contextlib.nullcontext():
                        answer = workers[worker].ask(request)
                except WorkerExited as e:  # the other engines go on; this one's figures are left out
                    failed[worker] = f"{e} during {case}"
                    errors[name] = failed[worker]
                    continue
                if "error" in answer:
                    errors[name] = answer["error"]
                else:
                    raw[case][name].append(answer["images_per_s"])
    return {case: {n: v for n, v in by.items() if len(v) == repeats} for case, by in raw.items()}, errors


def ratios(raw: dict[str, dict[str, list[float]]]) -> dict[str, dict[str, dict]]:
    """Within-repeat ratios: each MXNet process against each PyTorch peer; the deployment pairs; and what the
    training step keeps of its quiet speed next to a neighbour."""
    out: dict[str, dict[str, dict]] = {}
    for case, by in raw.items():
        pairs = [(a, b) for a in MXNET for b in PEERS] + list(DEPLOY_PAIRS)
        out[case] = {f"{a}/{b}": summary([x / y for x, y in zip(by[a], by[b])])
                     for a, b in pairs if a in by and b in by}
        if case.endswith("+neighbour"):
            quiet = raw[case.split("+")[0]]
            out[case].update({f"{n} kept": summary([x / y for x, y in zip(by[n], quiet[n])])
                              for n in by if n in quiet})
    return out


def versions() -> dict[str, Optional[str]]:
    """The engines' versions, read from their installed metadata (no engine imported here)."""
    from importlib.metadata import PackageNotFoundError, version

    found: dict[str, Optional[str]] = {}
    for package in ("mxnet", "torch", "onnxruntime", "onnx", "numpy", "archspec"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = None
    return found


def compiler() -> Optional[str]:
    """The C++ compiler torch.compile's CPU backend (Inductor) calls, or None: without one it cannot run."""
    import shutil

    found = shutil.which(os.environ.get("CXX", "g++")) or shutil.which("c++")
    if not found:
        return None
    done = subprocess.run([found, "--version"], capture_output=True, text=True)
    return done.stdout.splitlines()[0] if done.returncode == 0 and done.stdout else found


def estimate(args: argparse.Namespace, bf16: bool) -> float:
    """Seconds the options would take, from each spec's MACs at ASSUMED_GFLOPS (a training step is 3 forwards'
    work): each measurement is a warm-up step and then at least --seconds and two steps; plus ~10 s of process
    starts a spec and, with torch.compile, ~60 s of compiling a case it runs (measured for googlenet at batch 32
    on a quiet machine; on a loaded one it took over 10 minutes)."""
    total = 0.0
    for name in args.specs:
        p = plan(name, args, bf16)
        macs = summarize(load_spec(p.path, p.overrides or None)).macs
        total += 10 + 60 * sum("torch_compile" in who for who in p.who.values())
        for case, (kind, batch, _) in p.cases.items():
            step = batch * macs * 2 * (3 if kind == "train" else 1) / (ASSUMED_GFLOPS * 1e9)
            total += args.repeats * len(p.who[case]) * (step + max(args.seconds, 2 * step))
    return total


def run(args: argparse.Namespace) -> dict:
    sys.path.insert(0, str(ROOT))
    bf16 = cpu().get("avx512_bf16", False)  # archspec's supports_bfloat16 asks the same flag (no MXNet here)
    started = time.perf_counter()
    result: dict[str, Any] = {
        "machine": {"python": platform.python_version(), "platform": platform.platform(), **cpu(),
                    "threads": args.threads, "compiler": compiler()},
        "versions": versions(),
        "options": {k: v for k, v in vars(args).items() if k not in ("out",)},
        "notes": [] if bf16 else [BF16_SKIPPED], "specs": {}}
    with tempfile.TemporaryDirectory(prefix="archspec-zoo-") as tmp:
        for name in args.specs:
            p = plan(name, args, bf16)
            workers, failed = start(p, Path(tmp), args.threads)
            try:
                raw, errors = measure_spec(p, workers, failed, args.repeats, args.seconds)
            finally:
                for worker in workers.values():
                    worker.close()
            spec_summary = summarize(load_spec(p.path, p.overrides or None))
            result["specs"][name] = {
                "input": list(spec_summary.input), "macs_per_image": spec_summary.macs,
                "params": spec_summary.params, "cases": {c: list(v[:2]) for c, v in p.cases.items()},
                "images_per_s": {case: {n: summary(v) for n, v in by.items() if v} for case, by in raw.items()},
                "ratios": ratios(raw), "raw_images_per_s": raw, "errors": errors,
                "workers": {w: worker.info for w, worker in workers.items()}}
    result["seconds"] = time.perf_counter() - started
    return result


def markdown(r: dict) -> str:
    """The README's table: images/s (median) of every engine, and archspec's ratio to each peer with its spread."""
    m, v = r["machine"], r["versions"]
    lines = [f"{m.get('cpu', '?')}, {m['cores']} cores (AVX-512 {m.get('avx512')}, BF16 {m.get('avx512_bf16')}, "
             f"VNNI {m.get('avx512_vnni')}, AMX {m.get('amx')}), {m['threads']} threads per engine; "
             + ", ".join(f"{k} {val}" for k, val in v.items() if val)
             + f"; {r['options']['repeats']} repeats of >= {r['options']['seconds']} s; {r['seconds'] / 60:.1f} min",
             "", "| network | case | MXNet passive | MXNet active | torch NCHW | torch channels_last | torch.compile "
             "| passive / NCHW | passive / channels_last | passive / compile |",
             "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for name, s in r["specs"].items():
        for case, by in s["images_per_s"].items():
            if case.endswith("+neighbour"):
                continue
            cells = [_rate(by, n) for n in (*MXNET, *PEERS)]
            cells += [_ratio(s["ratios"][case].get(f"mxnet_passive/{p}")) for p in PEERS]
            lines.append(f"| {name} {'x'.join(map(str, s['input']))} | {case} | " + " | ".join(cells) + " |")
    lines += ["", "Training step with one CPU-bound neighbour process: images/s, and the share of its quiet speed kept "
              "(median, min-max over the repeats)", "",
              "| network | case | " + " | ".join(CONTENDED) + " | " + " | ".join(f"{n} kept" for n in CONTENDED) + " |",
              "|---|---|" + "--:|" * (2 * len(CONTENDED))]
    for name, s in r["specs"].items():
        for case, by in s["images_per_s"].items():
            if case.endswith("+neighbour"):
                lines.append(f"| {name} | {case} | " + " | ".join(_rate(by, n) for n in CONTENDED) + " | "
                             + " | ".join(_ratio(s["ratios"][case].get(f"{n} kept")) for n in CONTENDED) + " |")
    deployed = ("mxnet_passive", "mxnet_bf16", "mxnet_int8", "ort_fp32", "ort_int8")
    lines += ["", "Deployment: MXNet fp32 / bf16 / INT8 (archspec's precision path) and ONNX Runtime fp32 / INT8 "
              "(static QDQ, per channel, calibrated on the same images) on archspec's ONNX export", "",
              "| network | case | " + " | ".join(deployed) + " | " + " | ".join(f"{a} / {b}" for a, b in DEPLOY_PAIRS)
              + " |", "|---|---|" + "--:|" * (len(deployed) + len(DEPLOY_PAIRS))]
    for name, s in r["specs"].items():
        for case, by in s["images_per_s"].items():
            if any(n in by for n in ("ort_fp32", "mxnet_int8")):
                lines.append(f"| {name} | {case} | " + " | ".join(_rate(by, n) for n in deployed) + " | "
                             + " | ".join(_ratio(s["ratios"][case].get(f"{a}/{b}")) for a, b in DEPLOY_PAIRS) + " |")
    errors = [f"- {note}" for note in r["notes"]]
    errors += [f"- {name}: {engine} did not run: {error}" for name, s in r["specs"].items()
               for engine, error in s["errors"].items()]
    return "\n".join(lines + ([""] + errors if errors else [])) + "\n"


def _rate(by: dict, name: str) -> str:
    return f"{by[name]['median']:,.1f}" if name in by else "-"


def _ratio(s: Optional[dict]) -> str:
    return f"{s['median']:.2f} ({s['min']:.2f}-{s['max']:.2f})" if s else "-"


def parse(argv: Optional[list[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--specs", nargs="+", default=list(DEFAULT_SPECS), help="zoo spec names (specs/NAME.yaml)")
    p.add_argument("--deploy-specs", nargs="*", default=list(DEPLOY_SPECS),
                   help="specs also measured for deployment (MXNet bf16/INT8, ONNX Runtime fp32/INT8)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seconds", type=float, default=1.0, help="minimum time per measurement")
    p.add_argument("--batch", type=int, default=32, help="the larger forward batch (forward@1 is always measured)")
    p.add_argument("--train-batch", type=int, default=32, help="halved where a step would exceed --memory-gb")
    p.add_argument("--memory-gb", type=float, default=8.0, help="memory a training step may take, per process")
    p.add_argument("--threads", type=int, default=2, help="OMP/torch/ONNX Runtime threads of every engine")
    p.add_argument("--compile", action="store_true", default=None, help="measure torch.compile (the default, "
                   "but not with --quick: compiling takes minutes a case on 2 cores)")
    p.add_argument("--no-compile", dest="compile", action="store_false", help="leave out torch.compile")
    p.add_argument("--no-contended", dest="contended", action="store_false",
                   help="leave out the training step beside a CPU-bound neighbour")
    p.add_argument("--quick", action="store_true", help="googlenet at 32x32, batch 2, one repeat: every engine and "
                   "case runs but torch.compile (--compile adds it), in a minute or two")
    p.add_argument("--estimate", action="store_true", help="print the run time these options would take, and stop")
    p.add_argument("--out", type=Path, help="write OUT.json (every figure) and OUT.md (the tables); default "
                   "bench/results/zoo-<date> (none with --quick)")
    args = p.parse_args(argv)
    unknown = [s for s in args.specs if not (ROOT / "specs" / f"{s}.yaml").is_file()]
    if unknown:
        p.error(f"no spec {', '.join(unknown)} in {ROOT / 'specs'}")
    if not args.quick and not args.estimate and args.out is None:
        args.out = ROOT / "bench" / "results" / f"zoo-{time.strftime('%Y-%m-%d')}"
    if args.quick:
        args.specs, args.deploy_specs = ["googlenet"], ["googlenet"]
        args.repeats, args.seconds, args.batch, args.train_batch = 1, 0.0, 2, 2
    if args.compile is None:
        args.compile = not args.quick
    return args


def main(argv: Optional[list[str]] = None) -> dict:
    args = parse(argv)
    if args.estimate:
        bf16 = cpu().get("avx512_bf16", False)
        print(f"about {estimate(args, bf16) / 60:.0f} minutes for {', '.join(args.specs)}")
        return {}
    result = run(args)
    table = markdown(result)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
        args.out.with_suffix(".md").write_text(table)
    print(table)
    return result


if __name__ == "__main__":
    main()
