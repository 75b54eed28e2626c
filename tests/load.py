"""Run the test suite N times in a row beside a CPU-bound neighbour, as a loaded CI machine would.

    python tests/load.py --runs 3 [pytest arguments, e.g. -m "not slow"]

Per run it prints the counts (passed, failed, errors, skipped), the wall time, the peak RSS of the largest process
of the run (pytest or a process a test started: exact, from the kernel's accounting of the waited child) and,
when psutil is installed, the peak memory of the whole process tree (sampled every 0.2 s): its proportional set
size, each page shared between processes counted once in all (data-loading workers forked from pytest share most of
its pages; their RSS added up counted a 2.5 GB pytest three times, 6 GB for 0.3 GB of real use). It exits 1 if any run
failed. `--neighbours 0` runs the suite on a quiet machine.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# A busy loop in its own interpreter, free to run on any core (no affinity set), that ends when the runner is gone
# even if the runner was killed (its parent changes), so a neighbour never outlives the load test.
NEIGHBOUR = """
import os
parent = os.getppid()
while os.getppid() == parent:
    for _ in range(1_000_000):
        pass
"""


def start_neighbours(count: int) -> list[subprocess.Popen[bytes]]:
    return [subprocess.Popen([sys.executable, "-c", NEIGHBOUR]) for _ in range(count)]


def tree_pss(pid: int) -> int:
    """Proportional set size in bytes of a process and all its descendants now (0 without psutil or once the
    process is gone); RSS where the system gives no PSS."""
    try:
        import psutil
    except ImportError:
        return 0
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for process in processes:
        try:
            memory = process.memory_full_info()
            total += getattr(memory, "pss", memory.rss)
        except psutil.Error:
            pass  # ended between the listing and the reading
    return total


def counts(junit: Path) -> dict[str, int]:
    """Passed, failed, errors and skipped of a run, from pytest's JUnit XML report."""
    if not junit.exists():
        return {"passed": 0, "failed": 0, "errors": 0, "skipped": 0}
    root = ET.parse(junit).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    total = {key: sum(int(s.get(key, 0)) for s in suites) for key in ("tests", "failures", "errors", "skipped")}
    return {"passed": total["tests"] - total["failures"] - total["errors"] - total["skipped"],
            "failed": total["failures"], "errors": total["errors"], "skipped": total["skipped"]}


def run_once(pytest_args: list[str], junit: Path) -> tuple[int, float, int, int]:
    """Run pytest once: its exit status, wall seconds, largest process's peak RSS and tree's peak PSS (bytes)."""
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             f"--junit-xml={junit}", *pytest_args], cwd=ROOT)
    peak_tree, done = 0, threading.Event()

    def sample() -> None:
        nonlocal peak_tree
        while not done.wait(0.2):
            peak_tree = max(peak_tree, tree_pss(proc.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    # wait4 gives this child's own resource use, its waited descendants included: ru_maxrss is the largest
    # process's peak (kilobytes on Linux), per run, where RUSAGE_CHILDREN would carry the maximum across runs.
    _, status, usage = os.wait4(proc.pid, 0)
    done.set()
    sampler.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, time.monotonic() - start, usage.ru_maxrss * 1024, peak_tree


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs in a row (default 3)")
    parser.add_argument("--neighbours", type=int, default=1, help="CPU-bound processes beside it (default 1)")
    args, pytest_args = parser.parse_known_args(argv)
    neighbours = start_neighbours(args.neighbours)
    failed = 0
    try:
        with tempfile.TemporaryDirectory() as folder:
            for run in range(1, args.runs + 1):
                junit = Path(folder) / f"run-{run}.xml"
                status, wall, largest, tree = run_once(pytest_args, junit)
                failed += status != 0
                c = counts(junit)
                tree_text = f", tree (PSS) {tree / 2**30:.2f} GiB" if tree else ""
                print(f"load run {run}/{args.runs} ({args.neighbours} neighbour(s)): exit {status}, "
                      f"{c['passed']} passed, {c['failed']} failed, {c['errors']} errors, {c['skipped']} skipped, "
                      f"{wall:.0f} s, peak RSS largest process {largest / 2**30:.2f} GiB{tree_text}", flush=True)
    finally:
        for neighbour in neighbours:
            neighbour.kill()
            neighbour.wait()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
