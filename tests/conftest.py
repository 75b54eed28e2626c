import sys
from pathlib import Path

import pytest

import archspec.gluon  # noqa: F401  sets MXNet's thread count, before any test imports MXNet

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))  # the seed's GoogLeNet and the digits dataset, shared with the benchmark
SPECS = sorted((ROOT / "specs").glob("*.yaml"))


@pytest.fixture
def write_spec(tmp_path):
    """Write YAML text to a file and return its path."""
    def write(text: str, name: str = "spec.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path
    return write



@pytest.fixture(scope="session")
def digits(tmp_path_factory):
    """scikit-learn's real digits as the four Fashion-MNIST IDX files (bench/precision.py writes them)."""
    from precision import digits_folder  # bench/precision.py

    return digits_folder(tmp_path_factory.mktemp("digits"))
