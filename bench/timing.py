"""The one timing loop of the benchmarks, shared by the MXNet and PyTorch processes (imports neither)."""
import time


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
