import ctypes
import ctypes.util
import gc
import sys
from pathlib import Path

import pytest

import archspec.gluon  # noqa: F401  sets MXNet's thread count, before any test imports MXNet

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))  # the seed's GoogLeNet and the digits dataset, shared with the benchmark
SPECS = sorted((ROOT / "specs").glob("*.yaml"))


def _malloc_trim():
    """glibc's `malloc_trim`, or None where the C library has none (macOS, musl)."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


MALLOC_TRIM = _malloc_trim()


@pytest.fixture
def write_spec(tmp_path):
    """Write YAML text to a file and return its path."""
    def write(text: str, name: str = "spec.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path
    return write


def pytest_collection_finish(session):
    """Move what the imports made (torch, MXNet, ...: ~450,000 objects) out of the garbage collector's sight, so
    that the collection after each test (below) walks only what tests made: milliseconds instead of a second."""
    gc.collect()
    gc.freeze()


_fixtures_released = False


def pytest_fixture_post_finalizer(fixturedef, request):
    global _fixtures_released
    _fixtures_released |= fixturedef.scope != "function"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """Free the networks a test built when the test ends, not whenever Python next collects its oldest generation.
    A Gluon 1.x block and its name scope refer to each other, so only the cyclic collector frees a network, and
    MXNet computes asynchronously, freeing an array once the operations queued on it ran. Without the wait and the
    collection, the networks of a whole test file lived on together: 7 GB at the suite's peak. What survives is
    frozen, so that the next test's collection walks only the next test's objects (a module importing torch in a
    test adds 300,000: 0.1-0.8 s a collection). When a module's fixtures are gone (at the end of a module that has
    some), all is walked: 0.2-0.8 s, so not at the end of every module. All this once the test is over, its
    fixtures' values included (pytest lets go of them after the teardown hooks): else they would be frozen too.
    Last, the freed memory goes back to the system (glibc's malloc_trim): glibc keeps freed blocks below its mmap
    threshold, which rises to 32 MB once a large block is freed, in its heaps, so a large test's peak stayed the
    floor of every later test in the process."""
    yield
    if "mxnet" in sys.modules:
        sys.modules["mxnet"].nd.waitall()
    global _fixtures_released
    if _fixtures_released or nextitem is None:
        gc.unfreeze()
        _fixtures_released = False
    gc.collect()
    gc.freeze()
    if MALLOC_TRIM is not None:
        MALLOC_TRIM(0)


@pytest.fixture(scope="session")
def digits(tmp_path_factory):
    """scikit-learn's real digits as the four Fashion-MNIST IDX files (bench/precision.py writes them)."""
    from precision import digits_folder  # bench/precision.py

    return digits_folder(tmp_path_factory.mktemp("digits"))
