"""Wall time to load, validate and analyse every spec in specs/ - what `archspec validate specs/*.yaml`
costs a CI job. Run: python bench/analysis.py [--repeat N]. Not a test: it reports, it does not assert."""
import argparse
import glob
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args()
    specs = sorted(glob.glob(str(ROOT / "specs/*.yaml")))
    # In-process: the library's own cost once Python and pydantic are loaded.
    import archspec

    runs = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        for path in specs:
            archspec.summarize(archspec.load_spec(path))
        runs.append(time.perf_counter() - start)
    # A fresh process, as CI runs it: interpreter start and imports included.
    cold = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "archspec", "validate", "-q", *specs], check=True)
        cold.append(time.perf_counter() - start)
    print(json.dumps({"specs": len(specs), "mxnet_imported": "mxnet" in sys.modules,
                      "in_process_s": {"median": statistics.median(runs), "min": min(runs), "max": max(runs)},
                      "archspec_validate_cold_s": {"median": statistics.median(cold), "min": min(cold),
                                                   "max": max(cold)}}, indent=2))


if __name__ == "__main__":
    main()
