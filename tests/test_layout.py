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


@pytest.mark.slow  # 3-19 s: the fast run stays near a minute on a quick machine
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
def test_the_wheel_carries_the_zoo_and_the_block_library(tmp_path):
    """Installed from a wheel into a fresh virtual environment (not editable: no checkout, no specs/), from an empty
    folder: a zoo network builds by name, a user's spec starts from `base: googlenet`, and the library's blocks
    work."""
    import shutil
    import site

    source = tmp_path / "src"  # a copy: building writes build/ beside the sources
    shutil.copytree(ROOT / "archspec", source / "archspec", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "specs", source / "specs")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation",
                            "-q", "-w", str(tmp_path / "dist")], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("archspec-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    # The new environment's own pip: pip run from this environment would uninstall this one's archspec first
    installed = subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)],
                               capture_output=True, text=True)
    assert installed.returncode == 0, installed.stderr[-2000:]
    # The dependencies (MXNet, Pydantic, ...) from this environment's site-packages; archspec only from the wheel.
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": os.pathsep.join(site.getsitepackages()),
           "OMP_NUM_THREADS": "1"}
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "mine.yaml").write_text("base: googlenet\nname: mine\nargs: {num_classes: 7}\nstages:\n"
                                     "  head: [{residual: {channels: 1024}}, global_avg_pool, {dense: $num_classes}]\n")
    code = ("import archspec, pathlib\nfrom mxnet import np\n"
            "assert 'site-packages' in archspec.__file__ and 'src' not in archspec.__file__, archspec.__file__\n"
            "net = archspec.build_model('googlenet')\nprint(net(np.zeros((1, 1, 96, 96))).shape)\n"
            "print(archspec.summarize(archspec.load_spec('mine.yaml')).output)\n")
    proc = subprocess.run([str(python), "-c", code], capture_output=True, text=True, cwd=empty, env=env)
    assert proc.returncode == 0 and proc.stdout.split("\n")[:2] == ["(1, 10)", "(7,)"], proc.stdout + proc.stderr
    cli = subprocess.run([str(python), "-m", "archspec", "validate", "mine.yaml"], capture_output=True, text=True,
                         cwd=empty, env=env)
    assert cli.returncode == 0, cli.stdout + cli.stderr
