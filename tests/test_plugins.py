"""Kinds of the user's own reach every command through `--plugin` or an installed package's entry point; a
spec never loads code by itself; a kind that fails is reported at its YAML line."""
import os
import subprocess
import sys

import pytest

from conftest import ROOT

KINDS = '''
from typing import ClassVar
from archspec import Layer, register

@register
class Mish(Layer):
    """x * tanh(softplus(x))."""
    kind: ClassVar[str] = "mish"
    def infer(self, shape): return shape
    def gluon(self, shape):
        from mxnet.gluon import nn
        return nn.HybridLambda(lambda F, x: x * F.np.tanh(F.np.log1p(F.np.exp(x))))

@register
class Liar(Layer):
    """Claims to double the channels, builds an identity."""
    kind: ClassVar[str] = "liar"
    def infer(self, shape): return (2 * shape[0],) + tuple(shape[1:])
    def gluon(self, shape):
        from mxnet.gluon import nn
        return nn.HybridLambda(lambda F, x: x)

@register
class Broken(Layer):
    kind: ClassVar[str] = "broken"
    def infer(self, shape): raise ValueError("this kind is broken on purpose")
'''

SPEC = """name: m
input: {channels: 1, height: 8, width: 8}
stages:
  body:
    - conv: {channels: 4, kernel: 3, activation: mish}
    - mish
    - flatten
    - dense: 3
"""


def archspec(*args, env=None, cwd=None):
    return subprocess.run([sys.executable, "-m", "archspec", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=cwd)


@pytest.fixture
def plugin(tmp_path):
    (tmp_path / "mykinds.py").write_text(KINDS)
    (tmp_path / "spec.yaml").write_text(SPEC)
    return tmp_path


@pytest.mark.slow  # eleven commands in subprocesses: 4 s
def test_every_command_takes_a_plugin(plugin):
    spec, kinds = plugin / "spec.yaml", plugin / "mykinds.py"
    refused = archspec("validate", spec)
    assert refused.returncode == 1 and "unknown layer kind 'mish'" in refused.stdout
    assert archspec("validate", "--plugin", kinds, spec).returncode == 0
    summary = archspec("summary", "--plugin", kinds, spec, "--depth", "1", "--build")
    assert summary.returncode == 0 and "mish" in summary.stdout and "MISMATCH" not in summary.stdout, summary.stderr
    drawn = archspec("draw", "--plugin", kinds, spec, "-o", plugin / "m.dot")
    assert drawn.returncode == 0 and "mish" in (plugin / "m.dot").read_text()
    exported = archspec("export", "--plugin", kinds, spec, "--format", "mxnet", "-o", plugin / "m")
    assert exported.returncode == 0, exported.stderr
    assert (plugin / "m-symbol.json").is_file()
    assert "mish" in archspec("schema", "--plugin", kinds).stdout


def test_a_kind_that_raises_is_reported_at_its_line_and_the_other_files_still_run(plugin):
    bad = plugin / "bad.yaml"
    bad.write_text(SPEC.replace("    - mish\n", "    - broken\n"))
    proc = archspec("validate", "--plugin", plugin / "mykinds.py", bad, plugin / "spec.yaml")
    assert proc.returncode == 1
    assert proc.stdout.startswith(f"{bad}:6:7: stages.body.1.broken: broken on input 4x6x6: ValueError: this kind "
                                  "is broken on purpose"), proc.stdout
    assert f"{plugin / 'spec.yaml'}: ok" in proc.stderr and "internal error" not in proc.stderr


@pytest.mark.slow  # 3-19 s: the fast run stays near a minute on a quick machine
def test_summary_build_fails_when_mxnet_disagrees_with_the_static_counts(plugin):
    liar = plugin / "liar.yaml"
    liar.write_text(SPEC.replace("    - mish\n", "    - liar\n"))
    proc = archspec("summary", "--plugin", plugin / "mykinds.py", liar, "--build")
    assert proc.returncode == 1 and "MISMATCH" in proc.stdout, proc.stdout + proc.stderr


@pytest.mark.slow
def test_a_plugin_that_fails_to_load_is_named(plugin):
    (plugin / "typo.py").write_text("import nonexistent_module_xyz\n")
    proc = archspec("validate", "--plugin", plugin / "typo.py", plugin / "spec.yaml")
    assert proc.returncode == 1 and "--plugin" in proc.stderr and "nonexistent_module_xyz" in proc.stderr
    assert "Traceback" not in proc.stderr
    missing = archspec("validate", "--plugin", plugin / "nope.py", plugin / "spec.yaml")
    assert missing.returncode == 1 and "no such file" in missing.stderr


def test_an_installed_package_adds_kinds_through_its_entry_point(plugin):
    site = plugin / "site"
    (site / "mykinds_pkg-1.0.dist-info").mkdir(parents=True)
    (site / "mykinds_pkg-1.0.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: mykinds-pkg\n"
                                                                 "Version: 1.0\n")
    (site / "mykinds_pkg-1.0.dist-info" / "entry_points.txt").write_text("[archspec.kinds]\nmish = mykinds_pkg\n")
    (site / "mykinds_pkg.py").write_text(KINDS)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
    proc = archspec("validate", plugin / "spec.yaml", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_spec_cannot_load_code(plugin, tmp_path):
    canary = tmp_path / "canary"
    (plugin / "evil.py").write_text(f"open({str(canary)!r}, 'w').write('ran')\n")
    for text in ("plugin: evil.py\n", "plugins: [evil]\n", "import: evil\n"):
        hostile = plugin / "hostile.yaml"
        hostile.write_text(SPEC.replace("stages:", text + "stages:").replace("activation: mish", "activation: relu")
                           .replace("    - mish\n", ""))
        proc = archspec("validate", hostile, cwd=plugin)
        assert proc.returncode == 1 and "unknown top-level field" in proc.stdout
    assert not canary.exists()


@pytest.mark.slow
def test_a_registered_kind_replaces_the_library_block_of_its_name(plugin):
    (plugin / "shadow.py").write_text(KINDS.replace('kind: ClassVar[str] = "mish"', 'kind: ClassVar[str] = "se_gate"'))
    spec = plugin / "gated.yaml"
    spec.write_text(SPEC.replace("activation: mish", "activation: relu").replace("    - mish\n", "    - se_gate\n"))
    assert archspec("validate", "--plugin", plugin / "shadow.py", ROOT / "specs" / "lenet.yaml").returncode == 0
    proc = archspec("summary", "--plugin", plugin / "shadow.py", spec, "--depth", "1")
    assert proc.returncode == 0 and "se_gate" in proc.stdout and "parallel" not in proc.stdout, proc.stderr


def test_a_kind_whose_shape_rule_gives_a_non_shape_is_reported(plugin):
    (plugin / "negative.py").write_text(KINDS.replace("def infer(self, shape): return shape",
                                                      "def infer(self, shape): return (-16,) + tuple(shape[1:])", 1))
    proc = archspec("validate", "--plugin", plugin / "negative.py", plugin / "spec.yaml")
    assert proc.returncode == 1 and "not a shape of positive integers" in proc.stdout, proc.stdout + proc.stderr


@pytest.mark.slow
def test_a_kind_whose_counts_are_negative_or_not_integers_is_reported(plugin):
    for count in ("-910", "1.5"):
        (plugin / "counts.py").write_text(KINDS.replace("def infer(self, shape): return shape",
                                                        f"def infer(self, shape): return shape\n"
                                                        f"    def params(self, shape, out): return {count}", 1))
        proc = archspec("validate", "--plugin", plugin / "counts.py", plugin / "spec.yaml")
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert proc.stdout.startswith(f"{plugin / 'spec.yaml'}:6:7: stages.body.1.mish: mish on input 4x6x6: its "
                                      f"counts gave ({count}, 0, 0) parameters"), proc.stdout
        assert "not integers of 0 or more" in proc.stdout and "parameters, output" not in proc.stderr


@pytest.mark.parametrize("code", ["import sys\nsys.exit(0)\n", "raise SystemExit('bye')\n"])
def test_a_plugin_that_exits_at_import_is_an_error_naming_it(plugin, code):
    (plugin / "quits.py").write_text(code)
    proc = archspec("validate", "--plugin", plugin / "quits.py", plugin / "spec.yaml")
    assert proc.returncode == 1 and f"--plugin {plugin / 'quits.py'}: exited while being imported" in proc.stderr
    assert "ok" not in proc.stderr


@pytest.mark.parametrize("word", ["repeat", "when", "label", "layers", "args", "lambda"])
def test_a_reserved_word_is_no_kind_name(word):
    from typing import ClassVar

    from archspec import Layer, register
    from archspec.spec.kinds import REGISTRY

    class Reserved(Layer):
        kind: ClassVar[str] = word

    with pytest.raises(ValueError, match=f"Reserved.kind {word!r} is a reserved word of specs"):
        register(Reserved)
    assert word not in REGISTRY


def test_a_plugin_registering_a_reserved_word_is_an_error_naming_it(plugin):
    reserved = KINDS.replace('kind: ClassVar[str] = "mish"', 'kind: ClassVar[str] = "repeat"')
    (plugin / "reserved.py").write_text(reserved)
    proc = archspec("validate", "--plugin", plugin / "reserved.py", plugin / "spec.yaml")
    assert proc.returncode == 1 and f"--plugin {plugin / 'reserved.py'}: ValueError: Mish.kind 'repeat' is a " \
                                    "reserved word of specs" in proc.stderr, proc.stderr


@pytest.mark.slow  # trains and exports in subprocesses: 18 s
def test_a_block_that_breaks_its_shape_rule_is_refused_before_a_run_folder_is_made(plugin, digits):
    liar = plugin / "liar.yaml"
    liar.write_text(SPEC.replace("input: {channels: 1, height: 8, width: 8}", "input: {channels: 1, height: 28, "
                                 "width: 28}").replace("    - mish\n", "    - liar\n"))
    before = sorted(p.name for p in plugin.iterdir())
    for command in (["train", "--data-dir", digits, "--epochs", "1", "--out", plugin / "run"],
                    ["export", "-o", plugin / "liar"]):
        proc = archspec(*command[:1], "--plugin", plugin / "mykinds.py", liar, *command[1:])
        assert proc.returncode == 1, proc.stderr
        assert proc.stderr.startswith(f"{liar}:6:7: stages.body.1.liar: liar: its Gluon block gives 4x26x26 on input "
                                      "4x26x26, its shape rule 8x26x26"), proc.stderr
        assert sorted(p.name for p in plugin.iterdir()) == before  # no run folder, no export


@pytest.mark.slow
def test_a_stage_named_like_a_gluon_attribute_is_refused_by_validate(plugin):
    from archspec.gluon.modules import Network
    from archspec.spec.gluon_names import BLOCK_ATTRIBUTES

    assert BLOCK_ATTRIBUTES == {n for n in dir(Network) if not n.startswith("_")}  # the list kept with MXNet's
    spec = plugin / "clash.yaml"
    spec.write_text(SPEC.replace("  body:", "  collect_params:"))
    proc = archspec("validate", "--plugin", plugin / "mykinds.py", spec)
    assert proc.returncode == 1 and proc.stdout == f"{spec}:5:5: stages.collect_params: stage name " \
        "'collect_params' clashes with an attribute of Gluon blocks (net.collect_params); choose another, got " \
        "'collect_params'\n", proc.stdout
    spec.write_text(SPEC.replace("stages:", "aux:\n  export: {after: body.0, layers: [flatten, {dense: 3}]}\nstages:"))
    proc = archspec("validate", "--plugin", plugin / "mykinds.py", spec)
    assert proc.returncode == 1 and "aux.export: auxiliary head name 'export' clashes with an attribute of Gluon " \
        "blocks (net.export)" in proc.stdout, proc.stdout


@pytest.fixture
def registry():
    """The kinds registry, as it was before the test registered its own kinds (other tests list every kind)."""
    from archspec import REGISTRY

    before = dict(REGISTRY)
    yield REGISTRY
    REGISTRY.clear()
    REGISTRY.update(before)


def test_a_kind_with_parameters_and_no_mac_rule_is_warned_about(write_spec, registry):
    """Issue 23, defect 6: a user's kind with weights and no `macs` counted 0 MACs silently; it is now a warning
    at its line, and a kind that says how it computes is not warned about."""
    from typing import ClassVar

    from archspec import Layer, load_spec, register, summarize

    @register
    class Gain23(Layer):
        """A learnable per-channel gain, without a MAC rule."""
        kind: ClassVar[str] = "gain_without_macs_23"
        def infer(self, shape): return shape
        def params(self, shape, out): return shape[0]

    @register
    class CountedGain23(Gain23):
        kind: ClassVar[str] = "gain_with_macs_23"
        def macs(self, shape, out): return sum(out)

    path = write_spec("name: t\ninput: {channels: 3, height: 4, width: 4}\nstages:\n  s:\n"
                      "    - gain_without_macs_23\n    - gain_with_macs_23\n")
    summary = summarize(load_spec(path))
    assert [(w.line, w.message) for w in summary.warnings] == [
        (5, "gain_without_macs_23 has 3 parameters but no MAC rule, so its MACs count as 0 (define "
            "`macs(shape, out)` on the kind)")]


def test_a_plugin_kind_declares_its_scalar_short_form(write_spec, registry):
    """Issue 23: `shorthand` names the field a scalar fills, for a user's kind as for `scale` and `dense`."""
    from typing import ClassVar

    from archspec import Layer, load_spec, register

    @register
    class Shift23(Layer):
        kind: ClassVar[str] = "shift_by_23"
        shorthand: ClassVar[str] = "amount"
        amount: float
        def infer(self, shape): return shape

    path = write_spec("name: t\ninput: {channels: 3, height: 4, width: 4}\nstages:\n  s:\n"
                      "    - shift_by_23: 0.5\n    - scale: 0.17\n")
    shift, scale = load_spec(path).stages["s"]
    assert (shift.amount, scale.value) == (0.5, 0.17)
