"""The benchmark is not a test; this only runs it on one tiny batch of everything so that it cannot rot."""
import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT


@pytest.mark.slow
def test_benchmark_runs_on_a_tiny_batch(tmp_path):
    out = tmp_path / "smoke.json"
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "--smoke", "--precision", "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert os.path.exists(os.devnull) and not os.path.isfile(os.devnull)  # the profiler's trace went elsewhere
    r = json.loads(out.read_text())
    for case, by_model in r["images_per_s"].items():
        assert {"built", "seed", "hand", "hand2"} <= set(by_model) and all(m["median"] > 0 for m in by_model.values())
        assert {"built/seed", "built/hand", "hand2/hand"} <= set(r["ratios"][case])
        if r["torch"]:  # the peer, when torch is installed: its default and its fastest eager layout
            assert {"built/torch_nchw", "built/torch_cl"} <= set(r["ratios"][case])
    assert r["roofline"]["train@2"]["built"]["gflops"] > 0
    groups = r["profile_train_64"]["groups"]
    assert {"forward", "backward", "optimizer update"} <= set(groups)
    assert any(p["primitive"].startswith("reorder") for p in r["profile_train_64"]["primitives"])
    assert round(r["macs_per_image"] / 1e5) == 2761  # 276.1 M multiply-accumulates per image (issue 5)
    assert r["specs"]["mxnet_imported"] is False and r["specs"]["specs"] == len(list((ROOT / "specs").glob("*.yaml")))
    assert r["profile_forward_32"] and r["profile_forward_32"][0]["share"] > 0
    from archspec.gluon.precision import supports_bfloat16

    assert {"float32", "int8"} <= set(r["precision"])
    assert ("bfloat16" in r["precision"]) == supports_bfloat16()  # measured only where oneDNN can run it
    assert "built/seed" in done.stdout


@pytest.mark.slow
def test_the_rewrites_benchmark_runs_on_a_tiny_batch():
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "rewrites.py"), str(ROOT / "specs" / "lenet.yaml"),
                           "--batch", "2", "--rounds", "2", "--seconds", "0"], capture_output=True, text=True,
                          timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(r["rewrite"], r["mode"]) for r in rows] == [("fuse-siblings", "infer"), ("fuse-siblings", "train"),
                                                         ("fold-batchnorm", "infer"), ("onednn", "infer")]
    assert all(r["ratio"] > 0 and len(r["images_per_second"]) == 2 for r in rows)
