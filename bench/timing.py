"""The one timing loop of the benchmarks, shared by the MXNet and PyTorch processes (imports neither), and where
MXNet's profiler may write."""
import atexit
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path


def profiler_file() -> str:
    """A file for MXNet's profiler, which writes its trace at exit by replacing the file: given os.devnull, it
    turned /dev/null into a regular file for the whole machine. A file in a folder removed at exit instead."""
    folder = tempfile.mkdtemp(prefix="archspec-profile-")
    atexit.register(shutil.rmtree, folder, True)
    return os.path.join(folder, "profile.json")


def operator_times(dump: str, steps: int) -> list[dict]:
    """MXNet's aggregated profiler dump (`profiler.dumps(format="json")`) -> a row an operator, its calls and ms
    a step and its share of the time, slowest first. Only operators: not the C API calls that wait for them."""
    ops = json.loads(dump).get("Time", {}).get("operator", {})
    rows = sorted(({"operator": op, "calls": s["Count"] / steps, "ms": s["Total"] / steps} for op, s in ops.items()),
                  key=lambda r: -r["ms"])
    total = sum(r["ms"] for r in rows) or 1.0
    return [{**r, "share": r["ms"] / total} for r in rows]


def images_per_second(step, batch: int, seconds: float) -> float:
    """Run `step()` (one batch, waiting for its result) once to warm up, then for at least `seconds` and
    at least twice; return images per second."""
    step()
    n, start = 0, time.perf_counter()
    while True:
        step()
        n += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds and n >= 2:
            return n * batch / elapsed


def summary(values: list[float]) -> dict:
    """The median of repeated measurements, with their spread."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def cpu() -> dict:
    """The CPU's model, clock and the instruction sets the engines' kernels choose between (Linux)."""
    info: dict = {"cores": os.cpu_count()}
    try:
        text = Path("/proc/cpuinfo").read_text()
        info["cpu"] = next(line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name"))
        info["mhz"] = float(next(line.split(":", 1)[1] for line in text.splitlines() if line.startswith("cpu MHz")))
        flags = next(line for line in text.splitlines() if line.startswith("flags"))
        info["avx512"] = " avx512f" in flags
        info["avx512_bf16"], info["avx512_vnni"] = " avx512_bf16" in flags, " avx512_vnni" in flags
        info["amx"] = " amx_tile" in flags
    except (OSError, StopIteration):
        pass
    return info
