"""The zoo resolves and summarises as it did before the spec core was restructured (issue 21): every spec's
`archspec resolve --expand` and `archspec summary --json`, against the copy in `tests/golden/` written by the
tree before the change. To write the copy again after a deliberate change of a spec or of a count:
`python tests/test_golden.py`, and say why in the commit."""
import contextlib
import io
import json
import sys

import pytest

from archspec.cli import main
from conftest import ROOT

GOLDEN = ROOT / "tests" / "golden"
SPECS = sorted((ROOT / "specs").glob("*.yaml"))


def outputs(spec):
    """What the command line prints for `spec`: its expanded tree and its summary."""
    found = {}
    for key, argv in (("resolve", ["resolve", "--expand", str(spec.relative_to(ROOT))]),
                      ("summary", ["summary", "--json", str(spec.relative_to(ROOT))])):
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.chdir(ROOT):
            assert main(argv) == 0, (key, spec.name)
        found[key] = out.getvalue()
    found["summary"] = json.loads(found["summary"])
    return found


@pytest.mark.parametrize("spec", SPECS, ids=[s.stem for s in SPECS])
def test_zoo_resolves_and_summarises_as_stored(spec):
    stored = json.loads((GOLDEN / f"{spec.stem}.json").read_text(encoding="utf-8"))
    assert outputs(spec) == stored


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "tests"))
    for spec in SPECS:
        (GOLDEN / f"{spec.stem}.json").write_text(json.dumps(outputs(spec), indent=1) + "\n", encoding="utf-8")
