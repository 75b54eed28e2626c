"""The zoo's MobileNetV3 against GluonCV's own Gluon models (issue 23): at every width of the README's table the
same trainable parameters and batch-norm statistics as GluonCV's get_model("mobilenetv3_large", multiplier=w), and the
same outputs once GluonCV's weights are converted in. GluonCV 0.10.5 refuses to import beside torch >= 2
(gluoncv/check.py), so it runs in a process where torch cannot be imported, as in test_convert."""
import importlib.util
import json
import subprocess
import sys
import textwrap

import numpy as onp
import pytest
from mxnet import np
from test_convert import _close
from test_zoo_torchvision import width_table

from archspec import load_spec, summarize
from archspec.gluon.build import build_model
from archspec.gluon.convert import apply, convert
from conftest import ROOT

VARIANTS = ("mobilenetv3-large", "mobilenetv3-small")

_COUNTS = textwrap.dedent("""
    import json, sys
    sys.modules["torch"] = None
    import mxnet as mx
    from gluoncv.model_zoo import get_model
    counts = {}
    for variant, w in json.loads(sys.argv[1]):
        model = get_model(variant.replace("-", "_"), multiplier=w)
        model.initialize()
        model(mx.nd.zeros((1, 3, 224, 224)))
        params = model.collect_params().values()
        counts[f"{variant} {w}"] = [sum(p.data().size for p in params if p.grad_req != "null"),
                                    sum(p.data().size for p in params if p.grad_req == "null")]
    print(json.dumps(counts))
""")

# Random weights, batch-norm scales and shifts, and running statistics measured on images then perturbed (as
# test_convert's _randomise_gluon; its train-mode pass leaves this MXNet's classic batch norm's statistics at 0 and
# 1, which would shrink the signal block after block until the outputs no longer depend on the input): each batch
# norm takes the statistics of its own input, in order, through a hook that runs before it.
_OUTPUTS = textwrap.dedent("""
    import sys
    sys.modules["torch"] = None
    import mxnet as mx, numpy as onp
    from mxnet.gluon import nn
    from gluoncv.model_zoo import get_model
    from test_convert import _images, _normalised
    mx.random.seed(0)
    rng = onp.random.default_rng(0)
    model = get_model(sys.argv[2], multiplier=float(sys.argv[3]))
    model.initialize(mx.init.Xavier())
    images = _images(2, 4, 112)
    x = mx.nd.array(_normalised(images))
    model(x)

    def measure(block, inputs):
        data = inputs[0].asnumpy()
        mean, var = data.mean(axis=(0, 2, 3)), data.var(axis=(0, 2, 3))
        block.running_mean.set_data(mx.nd.array(mean + 0.1 * onp.sqrt(var) * rng.normal(size=mean.shape)))
        block.running_var.set_data(mx.nd.array(var * rng.uniform(0.8, 1.25, var.shape)))
        block.gamma.set_data(mx.nd.array(rng.uniform(0.5, 1.5, mean.shape)))
        block.beta.set_data(mx.nd.array(rng.uniform(-0.2, 0.2, mean.shape)))

    norms = []
    model.apply(lambda block: norms.append(block) if isinstance(block, nn.BatchNorm) else None)
    hooks = [block.register_forward_pre_hook(measure) for block in norms]
    model(mx.nd.array(_normalised(_images(8, 10, 112))))
    for hook in hooks:
        hook.detach()
    model.save_parameters(sys.argv[1] + "/model.params")
    onp.save(sys.argv[1] + "/x.npy", images)
    onp.save(sys.argv[1] + "/y.npy", model(x).asnumpy())
""")


def gluoncv(script, *args):
    """Runs `script` with GluonCV, in a process without torch; its standard output."""
    if importlib.util.find_spec("gluoncv") is None:  # found, not imported: it refuses this process's torch
        pytest.skip("GluonCV is not installed")
    proc = subprocess.run([sys.executable, "-c", script, *map(str, args)], cwd=ROOT / "tests", capture_output=True,
                          text=True,
                          env={"PYTHONPATH": str(ROOT / "tests"), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_readme_width_table_is_archspec(variant):
    rows = width_table(variant)
    assert [w for w, _, _ in rows] == [0.5, 0.75, 1.0, 1.25]
    for w, mine, reference in rows:
        summary = summarize(load_spec(ROOT / "specs" / f"{variant}.yaml", [f"width={w}"]))
        assert (summary.params, summary.state) == mine == reference


@pytest.mark.slow  # eight GluonCV networks built: 10 s
def test_the_readme_width_table_is_gluoncv():
    rows = [(variant, w, reference) for variant in VARIANTS for w, _, reference in width_table(variant)]
    counts = json.loads(gluoncv(_COUNTS, json.dumps([(variant, w) for variant, w, _ in rows])))
    assert {key: tuple(value) for key, value in counts.items()} == {f"{v} {w}": r for v, w, r in rows}


@pytest.mark.slow
@pytest.mark.parametrize("variant, width", [("mobilenetv3-large", 1.0), ("mobilenetv3-large", 0.75),
                                            ("mobilenetv3-small", 1.25)])
def test_mobilenetv3_outputs_are_gluoncvs(tmp_path, variant, width):
    """GluonCV's network with random weights and batch-norm statistics, converted in: the same outputs."""
    gluoncv(_OUTPUTS, tmp_path, variant.replace("-", "_"), width)
    x, expected = onp.load(tmp_path / "x.npy"), onp.load(tmp_path / "y.npy")
    net = build_model(ROOT / "specs" / f"{variant}.yaml", [f"width={width}", "input.height=112",
                                                           "input.width=112"])
    apply(net, convert(net, "gluoncv", tmp_path / "model.params"))
    assert _close(net(np.array(x)).asnumpy(), expected)
