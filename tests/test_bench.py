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
def test_zoo_benchmark_quick_run_fills_every_table(tmp_path):
    """bench/zoo.py --quick (googlenet at 32x32, batch 2): every engine and case measured, the tables shaped as
    the README's, the machine, threads and versions named. Structure only: the figures are not compared."""
    out = tmp_path / "zoo"
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "zoo.py"), "--quick", "--threads",
                           "1", "--out", str(out)], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    r = json.loads(out.with_suffix(".json").read_text())
    assert r["machine"]["threads"] == 1 and r["machine"]["cores"] and r["versions"]["mxnet"] == "1.9.1"
    assert list(r["specs"]) == ["googlenet"]
    s = r["specs"]["googlenet"]
    assert s["input"] == [1, 32, 32]
    assert set(s["images_per_s"]) == {"forward@1", "forward@2", "train@2", "train@2+neighbour"}
    for case in ("forward@1", "forward@2", "train@2"):  # archspec (both wait policies) against each eager peer
        assert {"mxnet_passive", "mxnet_active", "torch_nchw", "torch_cl"} <= set(s["images_per_s"][case])
        assert {f"{m}/{t}" for m in ("mxnet_passive", "mxnet_active") for t in ("torch_nchw", "torch_cl")} \
            <= set(s["ratios"][case])
        assert "torch_compile" not in s["images_per_s"][case]
    for case in ("forward@1", "forward@2"):  # the deployment peers on archspec's own ONNX export
        assert {"mxnet_int8", "ort_fp32", "ort_int8"} <= set(s["images_per_s"][case])
        assert {"mxnet_passive/ort_fp32", "mxnet_int8/ort_int8"} <= set(s["ratios"][case])
    assert {"mxnet_passive kept", "mxnet_active kept", "torch_cl kept"} <= set(s["ratios"]["train@2+neighbour"])
    assert all(v["median"] > 0 for by in s["images_per_s"].values() for v in by.values())
    assert s["errors"] == {}
    from archspec.gluon.precision import supports_bfloat16

    assert ("mxnet_bf16" in s["images_per_s"]["forward@2"]) == supports_bfloat16()
    assert any("bf16 not measured" in n for n in r["notes"]) != supports_bfloat16()

    table = out.with_suffix(".md").read_text()
    assert table in done.stdout
    rows = [line for line in table.splitlines() if line.startswith("| googlenet")]
    assert [row.split(" | ")[1] for row in rows] == ["forward@1", "forward@2", "train@2",  # main table
                                                     "train@2+neighbour", "forward@1", "forward@2"]
    header = [line for line in table.splitlines() if line.startswith("| network")]
    assert all(line.count("|") == header_line.count("|") for line, header_line in
               zip(rows, [header[0]] * 3 + [header[1]] + [header[2]] * 2))
    assert "1 threads per engine" in table and "mxnet 1.9.1" in table and "torch " in table


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


@pytest.mark.slow
def test_the_residual_sums_benchmark_runs_on_a_tiny_batch(tmp_path):
    spec = tmp_path / "residual.yaml"  # a residual sum of equal shapes, and a convolution before it to fuse into
    spec.write_text("name: r\ninput: {channels: 1, height: 8, width: 8}\nstages:\n  body:\n"
                    "    - {conv: {channels: 4, kernel: 3, padding: 1}}\n"
                    "    - parallel: {merge: add, branches: [[], [{conv: {channels: 4, kernel: 3, padding: 1}}]]}\n"
                    "  head: [global_avg_pool, {dense: 3}]\n")
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "sums.py"), str(spec), "--batch", "2", "--rounds",
                           "2", "--seconds", "0"], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["mode"] for r in rows] == ["train", "infer", "onednn"]
    assert all(r["ratio"] > 0 and len(r["images_per_second"]) == 2 for r in rows)


@pytest.mark.slow
@pytest.mark.parametrize("spec", ["googlenet", "mobilenetv2"])  # and depthwise convolutions: oneDNN's groups
def test_the_step_profile_counts_the_convolutions_multiply_accumulates_as_the_analyser_does(spec):
    """The convolutions' GFLOP/s in `profile_step.py primitives` come from oneDNN's own problem descriptors: they
    must count what the static analysis counts, in forward and in both backward passes."""
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "profile_step.py"), "primitives", "--spec", spec,
                           "--batch", "2", "--steps", "1"], capture_output=True, text=True, timeout=600,
                          cwd=ROOT / "bench")
    assert done.returncode == 0, done.stderr[-3000:]
    r = json.loads(done.stdout.splitlines()[-1])
    from archspec import load_spec, summarize

    rows = summarize(load_spec(ROOT / "specs" / f"{spec}.yaml")).rows
    macs = 2 * sum(row.macs for row in rows if row.kind == "conv")  # batch 2
    flops = {p["primitive"]: p["flops"] for p in r["primitives"] if "flops" in p}
    assert flops["convolution forward_training"] == flops["convolution backward_weights"] == 2 * macs
    # the first convolution's input gradient is not computed: the images need none
    first = next(row for row in rows if row.kind == "conv")
    assert flops["convolution backward_data"] == 2 * (macs - 2 * first.macs)
    c = r["convolutions"]
    assert c["gflops"] > 0 and c["sgemm_gflops"] > 0 and 0 < c["share_of_primitives"] < 1
