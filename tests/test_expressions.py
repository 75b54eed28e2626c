"""Specs that read the shape they receive: expressions, `when`, scaling that composes with both, and the
errors an expression can cause, located at its YAML line - hostile ones refused quickly."""
import json
import subprocess
import sys
import time

import pytest

from archspec import SpecError, load_spec, summarize
from archspec.cli import main
from conftest import ROOT

HEAD = "name: t\ninput: {channels: 3, height: 8, width: 8}\n"


def spec(write_spec, body, blocks=""):
    return write_spec(HEAD + (f"blocks:\n{blocks}" if blocks else "") + "stages:\n  s:\n" + body)


def test_in_is_the_shape_each_entry_receives(write_spec):
    path = spec(write_spec, "    - conv: {channels: 6, kernel: 3, padding: 1}\n"
                            "    - conv: {channels: $in.channels, kernel: 3, groups: $in.channels}\n"
                            "    - conv: {channels: '${in.channels * 2 + in.height // 3}', kernel: 1}\n")
    s = summarize(load_spec(path))
    assert [s.row(f"s.{i}").output for i in range(3)] == [(6, 8, 8), (6, 6, 6), (14, 6, 6)]


def test_when_keeps_an_entry_or_a_branch_only_where_it_holds(write_spec):
    blocks = ("  maybe_down:\n    args: {channels: null}\n    layers:\n      - parallel:\n          merge: add\n"
              "          branches:\n            - [{conv: {channels: $channels, kernel: 1}}]\n"
              "            - when: '${in.channels == channels}'\n              layers: []\n"
              "            - when: '${in.channels != channels}'\n              layers: [{conv: {channels: $channels, kernel: 1}}]\n")
    path = spec(write_spec, "    - maybe_down: {channels: 3}\n    - maybe_down: {channels: 5}\n", blocks)
    same, changed = load_spec(path).stages["s"]
    # same channels: the identity branch and no projection; new channels: a projection, no identity
    assert [[layer.kind for layer in branch] for branch in same.branches] == [["conv"], []]
    assert [[layer.kind for layer in branch] for branch in changed.branches] == [["conv"], ["conv"]]


def test_a_residual_block_keeps_its_shortcut_at_any_width():
    """d2l.Residual's projection exists only where the shape changes, at width 1 and at width 0.5."""
    for width in (1, 0.5):
        s = summarize(load_spec(ROOT / "specs/resnet18.yaml", [f"width={width}"]))
        projected = sorted({r.path.split(".branch")[0] for r in s.rows if ".branch2.0" in r.path})
        assert projected == ["b3.0.0", "b4.0.0", "b5.0.0"], width


@pytest.mark.parametrize("width", [0.3, 0.5])
def test_the_exercises_that_broke_with_width_now_hold(width):
    se = summarize(load_spec(ROOT / "specs/googlenet-se.yaml", [f"width={width}"]))
    gate = se.row("b3.0.1")  # the SE gate squeezes what its inception block gives, by 16
    squeeze = se.row("b3.0.1.branch2.1")
    assert squeeze.output[0] == max(1, gate.input[0] // 16)
    depthwise = load_spec(ROOT / "specs/googlenet-depthwise.yaml", [f"width={width}"])
    s = summarize(depthwise)
    for row in (r for r in s.rows if r.path.endswith(".0") and r.path.count(".") == 2 and r.kind == "conv"):
        assert row.output[0] == row.input[0]  # the 7x7 convolution stays depthwise


def test_a_number_that_meets_in_channels_is_a_channel_count(write_spec):
    """At width 0.5 a block's `channels: 64` is 32 wherever it is used, so comparing it with in.channels holds."""
    blocks = ("  b:\n    args: {channels: null}\n    layers:\n"
              "      - conv: {channels: $channels, kernel: 1}\n        when: '${in.channels != channels}'\n"
              "      - conv: {channels: '${in.channels // 4}', kernel: 1}\n")
    text = HEAD.replace("channels: 3", "channels: 64") + "width: 0.5\nblocks:\n" + blocks + \
        "stages:\n  s:\n    - conv: {channels: 64, kernel: 1}\n    - b: {channels: 64}\n"
    s = summarize(load_spec(write_spec(text)))
    assert s.row("s.0").output[0] == 32  # 64 scaled
    assert s.row("s.1").kind == "conv" and s.row("s.1").output[0] == 8  # no projection; 32 // 4, not scaled again


@pytest.mark.parametrize("value, fragments", [
    ("${" + "(" * 200 + "1" + ")" * 200 + "}", ["nested deeper than 32"]),
    ("$" + "1+" * 5000 + "1", ["longer than 500 characters"]),
    ("${123456789012345678901234567890}", ["too large"]),
    ("${2 * 1000000000 * 1000000000 * 1000000000 * 1000000000}", ["too large"]),
    ("${in.channels // 0}", ["division by zero", "in = in (3x8x8)"]),
    ("$nope", ["unknown argument '$nope'"]),
    ("${nope + 1}", ["unknown name 'nope'"]),
    ("$in.__class__", ["not '__class__'"]),
    ("${in.channels.real}", ["has no attribute 'real'"]),
    ("${__import__('os').system('true')}", ["unknown function '__import__'"]),
    ("${[1, 2]}", ["unexpected '['"]),
    ("${1 if 2 else 3}", ["unexpected 'if'"]),
    ("${in.channels < 2 < 3}", ["chained comparisons"]),
    ("${min()}", ["min() takes numbers"]),
    ("${make_divisible(10, 0)}", ["positive integer divisor"]),
    ("${'a' * 3}", ["* needs numbers"]),
    ("${true + 1}", ["+ needs numbers"]),
    ("${unscaled(1280, 8)}", ["unscaled(count) takes one integer"]),
], ids=["deep", "long", "huge literal", "huge result", "division by zero", "unknown argument", "unknown name",
        "dunder", "attribute of a number", "import", "list literal", "python syntax", "chained", "empty call",
        "zero divisor", "string arithmetic", "bool arithmetic", "unscaled of two"])
def test_hostile_or_broken_expressions_are_refused_at_their_line(write_spec, capsys, value, fragments):
    path = spec(write_spec, f"    - conv: {{kernel: 1, channels: {json.dumps(value)}}}\n")
    started = time.thread_time()  # the CPU time of this validation, which a busy neighbour does not stretch
    assert main(["validate", str(path)]) == 1
    assert time.thread_time() - started < 2
    out = capsys.readouterr().out
    assert out.startswith(f"{path}:5:") and "stages.s.0.conv.channels" in out, out
    assert "Traceback" not in out and "internal error" not in out
    for fragment in fragments:
        assert fragment in out, out


def test_an_error_inside_a_block_names_the_use_and_the_definition(write_spec):
    blocks = "  gate:\n    args: {reduction: 0}\n    layers:\n      - conv: {channels: '${in.channels // reduction}', kernel: 1}\n"
    path = spec(write_spec, "    - gate\n", blocks)
    with pytest.raises(SpecError) as e:
        load_spec(path)
    (p,) = e.value.problems
    assert (p.line, p.path) == (7, ("stages", "s", 0, "gate", 0, "conv", "channels"))  # the definition's line
    assert "division by zero" in p.message and "reduction = 0" in p.message and "used at line 10" in p.message


def test_an_error_inside_a_library_block_is_reported_where_the_block_is_used(write_spec):
    with pytest.raises(SpecError) as e:  # a bad argument: at its value
        load_spec(spec(write_spec, "    - se_gate: {channels: 0}\n"))
    (bad,) = e.value.problems
    assert (bad.line, bad.path) == (5, ("stages", "s", 0, "se_gate", "channels"))
    assert "greater than or equal to 1" in bad.message
    with pytest.raises(SpecError) as e:  # a layer inside the library block that cannot take its input: at the use
        load_spec(spec(write_spec, "    - flatten\n    - residual: {channels: 4}\n", ))
    (inside,) = e.value.problems
    assert (inside.line, inside.path[:4]) == (6, ("stages", "s", 1, "residual"))
    assert "needs a (channels, height, width) input" in inside.message


def test_when_must_be_true_or_false(write_spec):
    path = spec(write_spec, "    - conv: {channels: 4, kernel: 1}\n      when: $in.channels\n")
    with pytest.raises(SpecError, match="`when` takes true or false, got 3"):
        load_spec(path)


def test_a_plain_dollar_string_is_written_twice(write_spec):
    path = spec(write_spec, "    - conv: {channels: 4, kernel: 1}\n    - sequential: {label: $$money, layers: [flatten]}\n")
    assert summarize(load_spec(path)).row("s.1").kind == "$money"


BOMBS = {
    "nested repeats": "blocks:\n  a: {layers: [{activation: relu, repeat: 1000}]}\n"
                      "  b: {layers: [{a: {}, repeat: 1000}]}\n  c: {layers: [{b: {}, repeat: 1000}]}\n"
                      "stages:\n  s: [c]\n",
    "nested sequentials": "blocks:\n  a: {layers: [{sequential: {layers: [{activation: relu, repeat: 1000}]}, "
                          "repeat: 1000}]}\nstages:\n  s: [{a: {}, repeat: 1000}]\n",
    "fan-out": "blocks:\n  b0: {layers: [activation: relu]}\n" + "".join(
        f"  b{i}: {{layers: [parallel: {{merge: add, branches: [[b{i - 1}], [b{i - 1}], [b{i - 1}]]}}]}}\n"
        for i in range(1, 16)) + "stages:\n  s: [b15]\n",
}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n == "fan-out" else n for n in BOMBS])
def test_expansion_bombs_are_refused_while_expanding(write_spec, name):
    """A few lines that multiply out to millions of layers: refused at the entry that crosses the budget, in well
    under a second and a few tens of MB here (bounded loosely, so that only a real explosion fails this). The time
    is the CPU time the process used, which a busy neighbour does not stretch as it does the wall clock (12 s
    under a load of 10 on 2 cores)."""
    path = write_spec(HEAD + BOMBS[name])
    code = ("import re, time\nfrom archspec.cli import main\nstarted = time.process_time()\n"
            f"code = main(['validate', {str(path)!r}])\n"
            "peak = int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)) // 1024\n"
            "print(code, time.process_time() - started, peak)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    code, seconds, megabytes = proc.stdout.split()[-3:]
    assert code == "1" and float(seconds) < 10 and int(megabytes) < 500, proc.stdout
    assert "expands to more than 5,000 layers" in proc.stdout and proc.stdout.startswith(f"{path}:")
    assert "--max-layers" in proc.stdout


def test_a_large_legitimate_network_is_well_inside_the_budget(write_spec):
    """ResNet-152's 50 bottleneck blocks (3, 8, 36, 3) expand to a few hundred layers."""
    text = HEAD.replace("height: 8, width: 8", "height: 64, width: 64") + "stages:\n" + "".join(
        f"  s{i}:\n    - resnext_block: {{channels: {c}, stride: {2 if i else 1}}}\n"
        f"    - resnext_block: {{channels: {c}}}\n      repeat: {n - 1}\n"
        for i, (n, c) in enumerate([(3, 64), (8, 128), (36, 256), (3, 512)]))
    s = summarize(load_spec(write_spec(text)))
    assert 300 < len(s.rows) < 1_000


# Found by attacking the expansion as a hostile user would; each is kept here.

def test_a_head_at_a_tap_that_does_not_exist_is_reported_even_when_its_layers_read_in(write_spec):
    path = write_spec(HEAD + "stages:\n  a: [conv: {channels: 8, kernel: 1}]\naux:\n"
                             "  h: {after: zz, layers: [conv: {channels: '${in.channels * 2}', kernel: 1}]}\n"
                             "  h2: {after: a.3, layers: [conv: {channels: '${in.channels * 2}', kernel: 1}]}\n")
    with pytest.raises(SpecError) as e:
        load_spec(path)
    assert [(p.line, p.path) for p in e.value.problems] == [(6, ("aux", "h", "after")), (7, ("aux", "h2", "after"))]


@pytest.mark.parametrize("value", [".inf", "-.inf", ".nan", "1e999"])
def test_an_infinite_or_nan_argument_is_refused_where_it_is_used(write_spec, capsys, value):
    path = write_spec(HEAD + f"args: {{a: {value}}}\nstages:\n  s: [conv: {{channels: '${{round(a)}}', kernel: 1}}]\n")
    assert main(["validate", str(path)]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"{path}:5:") and "not a finite number" in out


@pytest.mark.slow
def test_entries_left_out_by_when_count_against_the_budget(write_spec):
    text = HEAD + "blocks:\n  l1:\n    layers:\n      - activation: relu\n" + \
        "      - {activation: relu, when: '${in.channels < 0}'}\n" * 6000 + "stages:\n  s: [{l1: {}, repeat: 1000}]\n"
    with pytest.raises(SpecError, match="expands to more than 5,000 layers"):
        load_spec(write_spec(text))


def test_a_value_computed_from_in_channels_is_never_scaled_again(write_spec):
    text = (HEAD.replace("channels: 3", "channels: 32") + "width: 0.5\nwidth_divisor: 8\nstages:\n  s:\n"
            "    - conv: {channels: 32, kernel: 1}\n"                                   # 16 at width 0.5
            "    - conv: {channels: '${make_divisible(in.channels * 1.5, 8)}', kernel: 1}\n"   # 24, not 16
            "    - conv: {channels: '${round(in.channels * 0.5)}', kernel: 1}\n"        # 12
            "    - conv: {channels: '${-in.channels + 100}', kernel: 1}\n"  # 100 is 48 at width 0.5 (divisor 8): 36
            "    - conv: {channels: 4, kernel: 1}\n      repeat: '${in.channels // 36}'\n")
    s = summarize(load_spec(write_spec(text)))
    assert [s.row(f"s.{i}").output[0] for i in range(4)] == [16, 24, 12, 36]
    assert s.row("s.4").output[0] == 8 and "s.5" not in {r.path for r in s.rows}  # repeat 1, channels scaled


def test_the_multipliers_problems_are_located_one_per_field(write_spec):
    path = write_spec(HEAD + "width: 100\ndepth: -1\nstages:\n  s: [flatten]\n")
    with pytest.raises(SpecError) as e:
        load_spec(path)
    assert [(p.line, p.path) for p in e.value.problems] == [(3, ("width",)), (4, ("depth",))]


def test_arguments_may_use_the_ones_before_them_everywhere(write_spec):
    text = ("name: t\nargs: {size: 16, wide: '${size * 2}'}\ninput: {channels: 3, height: $size, width: $wide}\n"
            "blocks:\n  b:\n    args: {channels: null, hidden: '${channels * 4}'}\n"
            "    layers: [{conv: {channels: $hidden, kernel: 1}}, {conv: {channels: $channels, kernel: 1}}]\n"
            "stages:\n  s: [{b: {channels: 8}}]\naux:\n  h: {after: '$stage', weight: '${2 ** 1}', layers: [flatten]}\n")
    with pytest.raises(SpecError) as e:  # `**` is not in the grammar; `$stage` is no argument
        load_spec(write_spec(text))
    assert {p.path for p in e.value.problems} == {("aux", "h", "after"), ("aux", "h", "weight")}
    s = summarize(load_spec(write_spec(text.replace("'$stage'", "s").replace("'${2 ** 1}'", "0.5"))))
    assert s.input == (3, 16, 32) and s.row("s.0.0").output == (32, 16, 32) and s.row("s").output == (8, 16, 32)


def _make_divisible(v, divisor, min_value=None):
    """torchvision.models._utils._make_divisible, copied as published (the reference, not archspec's code)."""
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


@pytest.mark.parametrize("width", [0.3, 0.5, 0.75, 1.0, 1.25])
def test_width_rounds_as_mobilenet_and_scales_a_computed_count_once(write_spec, width):
    """Issue 23, defect 4: `width` rounds with MobileNet's make_divisible (24 at 0.75 is 24, not 16), and
    `${make_divisible(90, 8)}` scales 90 once (make_divisible(90 * w, 8)), not its rounded result again."""
    path = write_spec(HEAD + f"width: {width}\nwidth_divisor: 8\nstages:\n  s:\n"
                             "    - conv: {channels: 24, kernel: 1}\n"
                             "    - conv: {channels: '${make_divisible(90, 8)}', kernel: 1}\n"
                             "    - conv: {channels: '${make_divisible(in.channels * 0.25, 8)}', kernel: 1}\n")
    s = summarize(load_spec(path))
    first, second = _make_divisible(24 * width, 8), _make_divisible(90 * width, 8)
    assert [s.row(f"s.{i}").output[0] for i in range(3)] == [first, second, _make_divisible(second * 0.25, 8)]


def test_a_required_argument_is_spelled_required_and_survives_a_base_merge(write_spec):
    """Issue 23, defect 1: `required` marks a block argument a use must give; restated in a derived spec it stays
    required (a `base:` merge deletes on null, which silently deleted the argument)."""
    write_spec(HEAD + "blocks:\n  blk:\n    args: {channels: required, k: 1}\n    layers:\n"
                      "      - conv: {channels: $channels, kernel: $k}\nstages:\n  s:\n    - blk: {channels: 4}\n",
               "base.yaml")
    derived = write_spec("base: base.yaml\nblocks:\n  blk:\n    args: {channels: required, k: 3}\n", "derived.yaml")
    s = summarize(load_spec(derived))
    assert s.row("s.0").output == (4, 6, 6) and not s.warnings
    missing = write_spec("base: derived.yaml\nstages:\n  s:\n    - blk: {k: 1}\n", "missing.yaml")
    with pytest.raises(SpecError) as e:
        load_spec(missing)
    assert [(p.line, p.message) for p in e.value.problems] == [(4, "block blk needs argument 'channels'")]


def test_null_still_marks_a_required_argument_with_a_deprecation_warning(write_spec):
    path = spec(write_spec, "    - blk: {channels: 4}\n",
                "  blk:\n    args: {channels: null}\n    layers: [conv: {channels: $channels, kernel: 1}]\n")
    s = summarize(load_spec(path))
    assert s.row("s.0").output == (4, 8, 8)
    assert [(w.line, w.severity, w.message) for w in s.warnings] == [
        (5, "warning", "`channels: null` as a required argument is deprecated (in a `base:` merge null deletes): "
                       "write `channels: required`")]


def test_conv_bn_takes_a_factorised_kernel_and_pads_each_side_by_half_of_it(write_spec):
    """Inception-v3's 1x7 and 7x1 convolutions through the library's conv_bn: `${kernel // 2}` halves each of
    the pair, so the block keeps the size exactly as the plain convolution padded [0, 3] and [3, 0] does."""
    blocked = spec(write_spec, "    - conv_bn: {channels: 4, kernel: [1, 7]}\n"
                               "    - conv_bn: {channels: 5, kernel: [7, 1]}\n"
                               "    - conv_bn: {channels: 6}\n")
    conv = "    - conv: {channels: %d, kernel: %s, padding: %s, bias: false, batchnorm: true}\n"
    plain = spec(write_spec, conv % (4, "[1, 7]", "[0, 3]") + conv % (5, "[7, 1]", "[3, 0]") + conv % (6, 3, 1))
    a, b = summarize(load_spec(blocked)), summarize(load_spec(plain))
    assert [r.output for r in a.rows if r.depth == 1] == [(4, 8, 8), (5, 8, 8), (6, 8, 8)]
    assert [r.output for r in a.rows if r.depth == 1] == [r.output for r in b.rows if r.depth == 1]
    # torch.nn.Conv2d(3, 4, (1, 7), bias=False) + BatchNorm2d(4), (4, 5, (7, 1)), (5, 6, 3): weights and affine
    assert a.params == b.params == (3 * 4 * 7 + 2 * 4) + (4 * 5 * 7 + 2 * 5) + (5 * 6 * 9 + 2 * 6)


@pytest.mark.parametrize("kernel, message", [("[1, 7, 3]", "kernel"), ("[0, 7]", "kernel"), ("'x'", "kernel")])
def test_conv_bn_refuses_a_kernel_that_is_not_a_size_or_a_pair(write_spec, capsys, kernel, message):
    path = spec(write_spec, f"    - conv_bn: {{channels: 4, kernel: {kernel}}}\n")
    assert main(["validate", str(path)]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"{path}:5:") and message in out and "Traceback" not in out, out


def test_slash_divides_exactly_for_rates_and_refuses_zero(write_spec, capsys):
    """ConvNeXt's stochastic depth grows as 0.1 * index / 17: `/` gives the decimal, `//` stays the floor."""
    path = spec(write_spec, "    - drop_path: '${0.1 * 5 / 17}'\n    - conv: {channels: '${round(7 / 2)}', kernel: 1}\n")
    s = load_spec(path)
    assert s.stages["s"][0].rate == 0.1 * 5 / 17
    assert summarize(s).row("s.1").output[0] == 4
    bad = spec(write_spec, "    - drop_path: '${0.1 / 0}'\n")
    assert main(["validate", str(bad)]) == 1
    assert "division by zero" in capsys.readouterr().out
