"""The one timing loop of the benchmarks, shared by the MXNet and PyTorch processes (imports neither), and where
MXNet's profiler may write."""
import atexit
import os
import shutil
import tempfile
import time


def profiler_file() -> str:
    """A file for MXNet's profiler, which writes its trace at exit by replacing the file: given os.devnull, it
    turned /dev/null into a regular file for the whole machine. A file in a folder removed at exit instead."""
    folder = tempfile.mkdtemp(prefix="archspec-profile-")
    atexit.register(shutil.rmtree, folder, True)
    return os.path.join(folder, "profile.json")


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
