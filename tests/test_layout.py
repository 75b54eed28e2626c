"""The architecture, enforced: the spec core never imports MXNet (checked in the source, and by running all of
it with MXNet unimportable), and imports point only down the rooms: spec <- gluon <- train <- cli."""
import ast
import os
import subprocess
import sys

import pytest

from conftest import ROOT, SPECS

PACKAGE = ROOT / "archspec"
# What each room may import from archspec: itself and the rooms below it (files.py is a leaf beside them).
ALLOWED = {"spec": {"spec", "files"}, "gluon": {"spec", "gluon", "files"},
           "train": {"spec", "gluon", "train", "files"}}
FORBIDDEN_IN_SPEC = ("mxnet", "onnx", "onnxruntime", "d2l", "torch")


def imports(path):
    """(line, module) of every import in a file, those inside functions too, relative ones made absolute."""
    package = path.relative_to(ROOT).with_suffix("").parts[:-1]
    if path.name == "__init__.py":
        package = path.relative_to(ROOT).parts[:-1]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[:len(package) - node.level + 1]) if node.level else ""
            module = ".".join(filter(None, [base, node.module or ""]))
            names = [f"{module}.{a.name}" for a in node.names] if not node.module else [module]
            yield from ((node.lineno, name) for name in names)


def room(module):
    """`archspec.spec.kinds` -> `spec`; `archspec.files` -> `files`; `archspec` -> `archspec`."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


@pytest.mark.parametrize("name", sorted(ALLOWED))
def test_imports_point_down_the_rooms(name):
    bad = []
    for path in sorted((PACKAGE / name).glob("*.py")):
        for line, module in imports(path):
            top = module.split(".")[0]
            if name == "spec" and top in FORBIDDEN_IN_SPEC:
                bad.append(f"{path.relative_to(ROOT)}:{line}: imports {module} (the spec core never imports MXNet)")
            if top == "archspec" and room(module) not in ALLOWED[name]:
                bad.append(f"{path.relative_to(ROOT)}:{line}: imports {module} ({name} may import only "
                           f"{', '.join(sorted(ALLOWED[name]))})")
    assert not bad, "\n".join(bad)


BLOCK_MXNET = """
import sys
class NoMXNet:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {forbidden!r}:
            raise ImportError(f"{{name}} is not importable in this test")
sys.meta_path.insert(0, NoMXNet())
"""

EVERYTHING_IN_THE_SPEC_CORE = """
import io, json, sys, tempfile
from contextlib import redirect_stdout
from pathlib import Path
from archspec import load_spec, summarize, format_table
from archspec.spec.draw import to_dot, draw
from archspec.spec.jsonschema import field_reference, spec_schema
from archspec.spec.resolve import annotated_yaml, load_resolved
from archspec.cli import main
specs = {specs!r}
out = Path(tempfile.mkdtemp())
for path in specs:
    spec = load_spec(path)
    format_table(summarize(spec), depth=3)
    assert "digraph" in to_dot(spec)
    annotated_yaml(load_resolved(path))
spec_schema(), field_reference()
with redirect_stdout(io.StringIO()):
    for argv in (["validate", "-q", *specs], ["summary", specs[0], "--depth", "2"], ["compare", *specs],
                 ["resolve", specs[0]], ["summary", "--json", specs[0]], ["schema"],
                 ["draw", specs[0], "-o", str(out / "d.dot")]):
        assert main(argv) == 0, argv
assert not [m for m in sys.modules if m.split(".")[0] == "mxnet"]
print("ok")
"""


def test_the_spec_core_runs_with_mxnet_unimportable():
    code = BLOCK_MXNET.format(forbidden=set(FORBIDDEN_IN_SPEC)) + EVERYTHING_IN_THE_SPEC_CORE.format(
        specs=[str(p) for p in SPECS])
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-3000:]


def test_importing_archspec_changes_nothing():
    code = ("import os, sys; before = dict(os.environ); import archspec, archspec.spec, archspec.cli; "
            "assert dict(os.environ) == before, set(os.environ) ^ set(before); "
            "assert 'mxnet' not in sys.modules; print('ok')")
    env = {k: v for k, v in __import__("os").environ.items() if k != "OMP_NUM_THREADS"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-3000:]


@pytest.mark.slow
def test_the_block_library_ships_in_the_wheel(tmp_path):
    """Installed from a wheel (no checkout, no specs/), a spec still uses the library's blocks by name."""
    import shutil
    source = tmp_path / "src"  # a copy: building writes build/ beside the sources
    shutil.copytree(ROOT / "archspec", source / "archspec", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation",
                            "-q", "-w", str(tmp_path / "dist")], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("archspec-*.whl")
    import zipfile
    zipfile.ZipFile(wheel).extractall(tmp_path / "site")
    spec = tmp_path / "net.yaml"
    spec.write_text("name: n\ninput: {channels: 3, height: 32, width: 32}\nstages:\n"
                    "  body: [{inception: {c1: 8, c2: [8, 16], c3: [4, 8], c4: 8}}, {residual: {channels: 40}}]\n")
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(tmp_path / "site")}
    proc = subprocess.run([sys.executable, "-m", "archspec", "summary", str(spec)], capture_output=True, text=True,
                          cwd=tmp_path, env=env)
    assert proc.returncode == 0 and "40x32x32" in proc.stdout, proc.stdout + proc.stderr
    assert str(tmp_path / "site") in subprocess.run(
        [sys.executable, "-c", "import archspec; print(archspec.__file__)"], capture_output=True, text=True,
        cwd=tmp_path, env=env).stdout
