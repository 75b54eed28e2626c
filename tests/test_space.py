"""Design spaces (`space:`) and `archspec sample`: every network sampled is valid, inside its constraints and
budget, written as a spec `archspec train` takes, and counted as MXNet counts it; a bad space is refused at its
line, never with a traceback, a hang or a file written."""
import json

import pytest
from mxnet import np, npx

from archspec import build_model, load_spec, summarize
from archspec.cli import main
from archspec.spec.expressions import Evaluation, parse
from archspec.spec.space import load_space, sample, spec_text
from conftest import ROOT

ANYNET = str(ROOT / "specs" / "anynet-space.yaml")
TINY = """\
name: tiny
input: {channels: 1, height: 12, width: 12}
args: {c1: 4, c2: 8}
stages:
  body:
    - conv: {channels: $c1, kernel: 3, padding: 1, activation: relu}
    - conv: {channels: $c2, kernel: 3, stride: 2, activation: relu}
  head: [global_avg_pool, {dense: 3}]
space:
  vary:
    c1: {int: [2, 16], step: 2}
    c2: {choice: [4, 8, 16]}
  constraints: [c2 >= c1]
  budget: {max_params: 2000}
"""


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err and "internal error" not in out.err, out
    return code, out.out, out.err


@pytest.mark.slow
def test_every_network_sampled_from_anynet_is_inside_its_budget_and_constraints(capsys):
    code, out, _ = run(capsys, "sample", ANYNET, "-n", 300, "--seed", 7, "--json")
    assert code == 0
    result = json.loads(out)
    budget = load_space(ANYNET).budget
    assert len(result["networks"]) == 300
    assert result["attempts"] == 300 + sum(result["rejected"].values())
    assert any(k.startswith("constraint") for k in result["rejected"]) and "max_memory" in result["rejected"]
    for n in result["networks"]:
        v = n["values"]
        assert n["params"] <= budget.max_params and n["macs"] <= budget.max_macs and n["memory"] <= budget.max_memory
        assert round(v["w1"] * v["b1"]) % v["g1"] == 0 and round(v["w2"] * v["b2"]) % v["g2"] == 0
        assert 1 <= v["d1"] <= 8 and v["w1"] % 8 == 0 and v["b2"] in (1, 0.5, 0.25)
    assert len({json.dumps(n["values"]) for n in result["networks"]}) > 250  # drawn, not repeated


def test_sampled_networks_are_spec_files_that_load_with_the_counts_sample_gave(capsys, tmp_path):
    code, out, _ = run(capsys, "sample", ANYNET, "-n", 3, "--seed", 1, "--json", "--out", tmp_path / "s")
    assert code == 0
    for n in json.loads(out)["networks"]:
        spec = load_spec(n["file"])  # what `archspec train` loads
        s = summarize(spec)
        assert (s.params + s.state, s.macs, s.memory) == (n["params"], n["macs"], n["memory"])
        assert spec.stages["stage1"][0].kind == "sequential" and len(spec.stages["stage1"]) == n["values"]["d1"]
    code, again, _ = run(capsys, "sample", ANYNET, "-n", 3, "--seed", 1, "--json")
    assert [n["values"] for n in json.loads(again)["networks"]] == [n["values"] for n in json.loads(out)["networks"]]


def rows(summary):
    return [(r.path, r.kind, r.input, r.output, r.params, r.state, r.macs, r.memory) for r in summary.rows]


@pytest.mark.slow
@pytest.mark.parametrize("space", ["anynet-space", "choice of blocks"])
def test_what_the_networks_of_a_space_share_changes_no_count(tmp_path, write_spec, space):
    """A space's networks share the expansions, layers and rows their values do not change (`expand.Memo`): each
    analyses exactly as its spec file loaded afresh."""
    path = ANYNET if space == "anynet-space" else write_spec(
        "base: regnetx32\nspace:\n  vary:\n    stages.stage1.1.repeat: {int: [1, 3]}\n"
        "    stages.stage2.0: {choice: [{resnext_block: {channels: 64, stride: 2}}, {residual: {channels: 96, "
        "stride: 2}}, {resnext_block: {channels: 48, stride: 2, bot_mul: 0.5}}]}\n"
        "    stages.stage2.1.channels: {choice: [64, 96, 48]}\n")
    loaded = load_space(path)
    assert loaded.memo is not None
    for i, network in enumerate(sample(loaded, 60, seed=2).networks):
        (tmp_path / f"{i}.yaml").write_text(spec_text(network, f"n{i}"))
        assert rows(network.summary) == rows(summarize(load_spec(tmp_path / f"{i}.yaml"))), i
    assert sum(len(kept) for kept in loaded.memo.entries.values()) < 60 * 6  # shared, not one per network


def test_sample_prints_a_table_and_the_rejections_per_constraint_and_budget(capsys, write_spec):
    code, out, err = run(capsys, "sample", write_spec(TINY), "-n", 20)
    assert code == 0 and "sampled in" in err
    header, *rows = out.splitlines()
    assert header.split() == ["#", "c1", "c2", "params", "MACs", "memory"]
    assert [int(r.split()[0]) for r in rows[:20]] == list(range(20)) and rows[20].startswith("20 networks in ")
    assert "rejected:" in rows[20] and any(r.split(maxsplit=1)[1] == "constraint c2 >= c1" for r in rows[21:])


@pytest.mark.slow
def test_twenty_sampled_networks_built_with_mxnet_agree_with_the_static_counts():
    npx.set_np()
    for network in sample(load_space(ANYNET), 20, seed=3).networks:
        net = build_model(network.spec, hybridize=False)
        assert net(np.zeros((1, 1, 96, 96))).shape == (1, 10)
        assert sum(p.data().size for p in net.collect_params().values()) == network.params


def test_a_choice_of_blocks_a_log_range_and_an_overlay_on_a_zoo_spec(write_spec):
    path = write_spec("base: regnetx32\n"
                      "width_divisor: 16\n"
                      "space:\n"
                      "  vary:\n"
                      "    stages.stage1.1.repeat: {int: [1, 3]}\n"
                      "    stages.stage2.0: {choice: [{resnext_block: {channels: 64, stride: 2}},\n"
                      "                               {residual: {channels: 64, stride: 2}}], name: block}\n"
                      "    width: {float: [0.5, 2.0], log: true}\n"
                      "  constraints: [\"block == '0:resnext_block' or width < 1.5\"]\n", "overlay.yaml")
    networks = sample(load_space(path), 30, seed=0).networks
    kinds = {n.spec.stages["stage2"][0].label for n in networks}
    assert kinds == {"resnext_block", "residual"}
    for n in networks:
        assert 0.5 <= n.values["width"] <= 2.0 and 2 <= len(n.spec.stages["stage1"]) <= 4
        assert n.spec.stages["stage2"][0].label == "resnext_block" or n.values["width"] < 1.5


def test_constraints_use_the_spec_expression_grammar_and_never_eval():
    assert Evaluation({"w1": 32, "w2": 80}, lambda c: c)(parse("w2 >= w1 and w2 % 16 == 0")) is True
    with pytest.raises(Exception):
        parse("__import__('os')")


HOSTILE = [  # (name, space section, fragment of the message, line of the problem)
    ("unknown path", "  vary:\n    stages.body.0.chanels: {int: [1, 4]}\n", "no field 'chanels'", 11),
    ("unknown argument", "  vary:\n    c3: {int: [1, 4]}\n", "no field 'c3'", 11),
    ("index out of range", "  vary:\n    stages.body.5.channels: {int: [1, 4]}\n", "index 5 is out of range", 11),
    ("empty range", "  vary:\n    c1: {int: [8, 2]}\n", "empty range", 11),
    ("step that does not divide", "  vary:\n    c1: {int: [2, 16], step: 5}\n", "step 5 does not divide", 11),
    ("huge range", "  vary:\n    c1: {int: [1, 100000000000]}\n", "at most 1,000,000", 11),
    ("float range upside down", "  vary:\n    width: {float: [2.0, 0.5]}\n", "empty range", 11),
    ("log of zero", "  vary:\n    width: {float: [0, 1], log: true}\n", "log needs a low above 0", 11),
    ("not a distribution", "  vary:\n    c1: [1, 2]\n", "a distribution is", 11),
    ("empty choice", "  vary:\n    c1: {choice: []}\n", "at least 1 item", 11),
    ("duplicate choice", "  vary:\n    c1: {choice: [2, 2]}\n", "in the choice twice", 11),
    ("constraint that never holds", "  vary:\n    c1: {int: [2, 4]}\n  constraints: [c1 > 100]\n",
     "rejects every network", 12),
    ("budget that nothing meets", "  vary:\n    c1: {int: [2, 4]}\n  budget: {max_params: 1}\n",
     "max_params rejects every network", 12),
    ("unknown name in a constraint", "  vary:\n    c1: {int: [2, 4]}\n  constraints: [c1 > c9]\n",
     "unknown name 'c9'", 12),
    ("constraint that is not a condition", "  vary:\n    c1: {int: [2, 4]}\n  constraints: [c1 + 1]\n",
     "a constraint is true or false", 12),
    ("constraint that is code", "  vary:\n    c1: {int: [2, 4]}\n  constraints: [\"__import__('os').system('x')\"]\n",
     "unknown function '__import__'", 12),
    ("unknown field of the space", "  vary:\n    c1: {int: [2, 4]}\n  budgit: {max_params: 1}\n",
     "did you mean 'budget'?", 12),
    ("negative budget", "  vary:\n    c1: {int: [2, 4]}\n  budget: {max_macs: -1}\n", "greater than or equal to 1",
     12),
    ("every network invalid", "  vary:\n    c1: {choice: [0]}\n", "greater than or equal to 1, got 0 (drawn: c1=0",
     11),
]


FOUND_BY_SAMPLING = {"constraint that never holds", "budget that nothing meets", "every network invalid"}


@pytest.mark.parametrize("name, section, fragment, line", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_a_bad_space_is_refused_at_its_line(capsys, tmp_path, name, section, fragment, line):
    path = tmp_path / "space.yaml"
    path.write_text(TINY.split("space:")[0] + "space:\n" + section)
    code, out, err = run(capsys, "sample", path, "-n", 5, "--out", tmp_path / "out")
    assert code == 1 and fragment in err, err
    assert f"{path}:{line}:" in err
    assert not (tmp_path / "out").exists()  # nothing written
    code, out, err = run(capsys, "validate", path)
    if name not in FOUND_BY_SAMPLING:
        assert code == 1 and fragment in out and f"{path}:{line}:" in out


def test_a_spec_without_a_space_is_not_a_design_space_and_n_is_bounded(capsys):
    code, _, err = run(capsys, "sample", ROOT / "specs" / "lenet.yaml")
    assert code == 1 and "no `space:` section" in err
    for n in (0, 10**9):
        code, _, err = run(capsys, "sample", ANYNET, "-n", n)
        assert code == 1 and "-n: expected a number of networks from 1 to 100,000" in err


HEAD = TINY.split("space:")[0]


def space_file(tmp_path, section, name="space.yaml"):
    path = tmp_path / name
    path.write_text(HEAD + "space:\n" + section)
    return path


@pytest.mark.parametrize("section, fragment, line", [
    ("  vary:\n    c1: {int: [1, 3]}\n    args.c1: {int: [10, 12], name: big}\n", "the same path as the variable c1",
     12),
    ("  vary:\n    stages.body.1.conv: {int: [1, 3]}\n"
     "    stages.body.1.conv.channels: {int: [1, 3]}\n", "a path inside the variable stages.body.1.conv", 12),
    ("  vary:\n    stages.body.1.conv.channels: {int: [1, 3]}\n"
     "    stages.body.1.conv: {int: [1, 3]}\n",
     "a path that holds the variable stages.body.1.conv.channels", 12),
    ("  vary:\n    stages.body.-1.channels: {int: [1, 3]}\n", "a negative index is not taken here", 11),
], ids=["same argument twice", "inside a varied value", "around a varied field", "negative index"])
def test_two_variables_on_one_path_are_refused_at_the_second(capsys, tmp_path, section, fragment, line):
    """Defect 1 of issue 15: the value reported was not the value of the network built."""
    path = space_file(tmp_path, section)
    code, out, err = run(capsys, "sample", path, "-n", 2, "--out", tmp_path / "out")
    assert code == 1 and f"{path}:{line}:5: space.vary." in err and fragment in err, err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("choice", ["[true, 1]", "[1, true]", "[0, false]", "[1, 1.0]"])
def test_a_choice_of_values_python_takes_as_equal_is_refused(capsys, tmp_path, choice):
    """Defect 2: `options.index` (and Optuna) took true for 1: the wrong value shown, the wrong block chosen."""
    path = space_file(tmp_path, f"  vary:\n    c1: {{choice: {choice}}}\n")
    code, _, err = run(capsys, "sample", path)
    assert code == 1 and f"{path}:11:9: space.vary.c1:" in err and "the same value to Optuna" in err, err


def test_a_chosen_value_is_shown_by_its_own_type():
    from archspec.spec.space import Choice, Variable
    from archspec.spec.diagnostics import Mark

    v = Variable("c1", "c1", Choice(choice=[2, "2", 3.5]), Mark("x", 1, 1), (2, "2", 3.5))
    assert [v.shown(2), v.shown("2"), v.shown(3.5), v.shown(True)] == [2, "2", 3.5, "-"]


@pytest.mark.parametrize("budget, set_, where, fragment", [
    ("{max_params: true}", None, "12:24: space.budget.max_params", "expected an integer"),
    ("0", None, "12:11: space.budget", "expected a mapping of max_params, max_macs and max_memory, got 0"),
    ("false", None, "12:11: space.budget", "got False"),
    ("lots", None, "12:11: space.budget", "got 'lots'"),
    ("{max_params: 100000}", "space.budget=3", "--set space.budget=3:1:14: space.budget", "got 3"),
    ("{max_params: 100000}", "space.budget.max_macs=true", "--set space.budget.max_macs=true:1:", "expected an integer"),
], ids=["true as 1", "zero", "false", "text", "--set budget", "--set limit"])
def test_a_budget_that_is_not_a_mapping_of_integers_is_refused_where_it_is_written(capsys, tmp_path, budget, set_,
                                                                                   where, fragment):
    """Defects 3-5: `max_params: true` was 1, `budget: 0` no budget, and a text budget was reported at 1:1."""
    path = space_file(tmp_path, f"  vary:\n    c1: {{int: [1, 3]}}\n  budget: {budget}\n")
    code, _, err = run(capsys, "sample", path, *(["--set", set_] if set_ else []))
    assert code == 1 and fragment in err and (where in err if set_ else f"{path}:{where}" in err), err
    code, out, _ = run(capsys, "validate", path, *(["--set", set_] if set_ else []))
    assert code == 1 and fragment in out


def test_sample_out_that_is_not_a_new_or_empty_folder_is_refused_and_nothing_written(capsys, tmp_path, monkeypatch):
    """Defects 6 and 9: a file, a FIFO, a dangling link, a path under a file or a too-long name crashed; a folder
    that held files was written over (the space itself included), and kept stale files of a larger -n."""
    import os

    monkeypatch.chdir(tmp_path)
    path = space_file(tmp_path, "  vary:\n    c1: {int: [2, 4]}\n", "tiny-0000.yaml")
    (tmp_path / "afile").write_text("mine")
    os.mkfifo(tmp_path / "fifo")
    os.symlink(tmp_path / "nowhere", tmp_path / "dangling")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "tiny-0007.yaml").write_text("an earlier sample")
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and not p.is_fifo()}
    for out, fragment in [("afile", "not a folder"), ("fifo", "not a folder"), ("dangling", "a symbolic link to nothing"),
                          ("afile/sub", "afile is not a folder"), ("x" * 300, "longer than 255 bytes"),
                          (".", "the folder is not empty"), ("full", "the folder is not empty")]:
        code, _, err = run(capsys, "sample", path, "-n", 2, "--out", out)
        assert code == 1 and fragment in err, (out, err)
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and not p.is_fifo()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "dangling", "fifo", "full", "tiny-0000.yaml"]
    code, _, _ = run(capsys, "sample", path, "-n", 2, "--out", "new/deeper")  # missing folders are made
    assert code == 0 and sorted(p.name for p in (tmp_path / "new" / "deeper").iterdir()) == [
        "tiny-0000.yaml", "tiny-0001.yaml"]


def test_a_spec_name_too_long_for_a_file_name_is_refused_before_anything_is_made(capsys, tmp_path):
    """Defect 7: a long (legal) name crashed with File name too long and left an empty folder."""
    path = tmp_path / "space.yaml"
    path.write_text(HEAD.replace("name: tiny", "name: " + "n" * 300) + "space:\n  vary:\n    c1: {int: [2, 4]}\n")
    code, _, err = run(capsys, "sample", path, "--out", tmp_path / "out")
    assert code == 1 and "longer than 255 bytes; shorten it with --set name=SHORT" in err
    assert not (tmp_path / "out").exists()
    code, _, _ = run(capsys, "sample", path, "-n", 1, "--out", tmp_path / "out", "--set", "name=short")
    assert code == 0 and [p.name for p in (tmp_path / "out").iterdir()] == ["short-0000.yaml"]


def test_a_sample_that_fails_part_way_leaves_nothing(capsys, tmp_path, monkeypatch):
    """Defect 8: a failure after the first file left it (and the folder) behind."""
    import archspec.files

    written = []
    real = archspec.files.write_atomically

    def failing(path, data):
        if written:
            raise OSError(28, "No space left on device")
        written.append(path)
        real(path, data)

    monkeypatch.setattr(archspec.files, "write_atomically", failing)
    path = space_file(tmp_path, "  vary:\n    c1: {int: [2, 4]}\n")
    code, _, err = run(capsys, "sample", path, "-n", 3, "--out", tmp_path / "a" / "out")
    assert code == 1 and "archspec: --out" in err and "No space left on device" in err and written
    assert not (tmp_path / "a").exists()


def test_sampling_keeps_no_network_and_its_work_is_bounded(capsys, tmp_path, monkeypatch):
    """Defect 10: every network was kept (tree, spec and summary: gigabytes for -n 100000 of big specs), and an
    untrusted space could make ten million slow attempts."""
    import gc
    import weakref

    from archspec.spec import space as spaces
    from archspec.spec.space import Tally, networks

    loaded = load_space(space_file(tmp_path, "  vary:\n    c1: {int: [2, 4]}\n"))
    alive = []
    for network in networks(loaded, 50, seed=0):
        alive.append(weakref.ref(network))
    del network
    gc.collect()
    assert sum(r() is not None for r in alive) == 0  # none held by the sampling
    tally = Tally()
    with pytest.raises(spaces.InputError, match="sampling stopped after analysing .* ask for fewer networks"):
        list(networks(loaded, 100, seed=0, tally=tally, max_work=200))
    assert 200 <= tally.work < 220
    monkeypatch.setattr(spaces, "MAX_WORK", 100)
    monkeypatch.setattr(spaces.networks, "__defaults__", (None, None, None, 100))
    code, _, err = run(capsys, "sample", tmp_path / "space.yaml", "-n", 100, "--out", tmp_path / "out")
    assert code == 1 and "archspec: sampling stopped after analysing" in err and not (tmp_path / "out").exists()


def test_seed_is_zero_or_more(capsys, tmp_path):
    code, _, err = run(capsys, "sample", space_file(tmp_path, "  vary:\n    c1: {int: [2, 4]}\n"), "--seed", -1)
    assert code == 1 and "--seed: expected 0 or more, got -1" in err


@pytest.mark.parametrize("override, varied", [("c1=7", "c1"), ("args.c1=7", "c1"),
                                              ("stages.body.1.conv.channels=4", "stages.body.1")])
def test_an_override_of_a_varied_value_is_refused_at_the_override(capsys, tmp_path, override, varied):
    """Every network would have replaced the value the user set, silently."""
    path = space_file(tmp_path, "  vary:\n    c1: {int: [1, 3]}\n    stages.body.1: {choice: [{conv: {channels: 3, "
                                "kernel: 3}}, {conv: {channels: 5, kernel: 3}}]}\n")
    code, _, err = run(capsys, "sample", path, "--set", override, "--set", "c2=5")
    assert code == 1 and f"--set {override}:1:" in err and f"the space varies {varied} (space.vary)" in err, err
    assert "c2" not in err
    assert run(capsys, "sample", path, "--set", "c2=5", "--set", "space.vary.c1.int=[1,2]")[0] == 0


@pytest.mark.slow
def test_sampling_looks_up_what_networks_share_in_time_that_does_not_grow_with_n():
    """`sample -n 100000` (the documented maximum) ran past 150 s: each entry's lookup in the memo scanned every
    variant kept for it, so a sampling took time in N squared. A lookup is now one dictionary access per set of
    names an entry's expansion reads, and those sets do not grow with the networks drawn."""
    from archspec.spec.space import networks

    loaded = load_space(ANYNET)
    list(networks(loaded, 40, seed=0))
    sets = {key: len(names) for key, names in loaded.memo.names.items()}
    kept = sum(len(variants) for variants in loaded.memo.entries.values())
    list(networks(loaded, 400, seed=1))
    assert max(len(names) for names in loaded.memo.names.values()) == max(sets.values()) <= 2
    assert sum(len(variants) for variants in loaded.memo.entries.values()) > kept  # new values were kept, and
    # found again by value: ten times the networks keep far fewer than ten times the variants
    assert sum(len(variants) for variants in loaded.memo.entries.values()) < 10 * kept


CONDITIONAL = str(ROOT / "specs" / "inception-or-residual-space.yaml")
INCEPTION = {"stages.body.0", "stages.body.0.inception.c1", "stages.body.0.inception.c2.1",
             "stages.body.0.inception.c4"}  # the file's keys: a choice, and the variables of each of its values
RESIDUAL = {"stages.body.0", "stages.body.0.residual.channels"}


@pytest.mark.slow  # 1,000 networks analysed: 3-8 s
def test_a_variable_inside_a_choice_is_drawn_and_constrained_only_when_its_branch_is_chosen():
    """Defect 9 of issue 23: a variable of a branch not chosen was still drawn and constrained. In 1,000 networks
    each has exactly the variables of the block it chose, they are in its spec, the other block's are nowhere in
    it, and each branch's constraint holds for that branch and never rejects the other's."""
    from archspec.spec.space import _data

    result = sample(load_space(CONDITIONAL), 1000, seed=0)
    chosen = {"inception": 0, "residual": 0}
    for network in result.networks:
        v, [entry] = network.values, [_data(network.tree["stages"]["body"][0])]
        kind = next(iter(entry))
        chosen[kind] += 1
        if kind == "inception":
            assert set(v) == INCEPTION and "residual" not in str(_data(network.tree["stages"]))
            body = entry["inception"]
            assert (body["c1"], body["c2"][1], body["c4"]) == (v["stages.body.0.inception.c1"],
                                                               v["stages.body.0.inception.c2.1"],
                                                               v["stages.body.0.inception.c4"])
            assert body["c2"][1] >= body["c1"] and body["c3"] == [16, 32]  # the constraint; c3 is not varied
        else:
            assert set(v) == RESIDUAL and entry == {"residual": {"channels": v["stages.body.0.residual.channels"]}}
            assert entry["residual"]["channels"] >= 32 and "inception" not in str(_data(network.tree["stages"]))
    assert min(chosen.values()) > 400  # both branches, about half each
    # each constraint rejected networks of its own branch, so it applied there; and it let the other through
    rejected = result.rejections.counts
    assert rejected["constraint c2 >= c1"] > 0 and rejected["constraint channels >= 32"] > 0


def test_a_conditional_network_is_the_spec_file_sample_writes(capsys, tmp_path):
    code, out, _ = run(capsys, "sample", CONDITIONAL, "-n", 6, "--seed", 3, "--json", "--out", tmp_path / "s")
    assert code == 0
    networks = json.loads(out)["networks"]
    assert {n["values"]["block"] for n in networks} == {"0:inception", "1:residual"}
    for n in networks:
        drawn = {"c1", "c2", "c4"} if n["values"]["block"] == "0:inception" else {"channels"}
        assert set(n["values"]) == {"block"} | drawn  # the values of the branch taken, no placeholder for others
        s = summarize(load_spec(n["file"]))
        assert (s.params + s.state, s.macs) == (n["params"], n["macs"])
    code, out, _ = run(capsys, "sample", CONDITIONAL, "-n", 4, "--seed", 3)
    assert code == 0 and " - " in out  # the table shows a variable not drawn as -


def test_spaces_that_varied_a_field_inside_a_chosen_block_are_now_conditional(tmp_path):
    """Issue 15 refused these (one path varied twice); a variable inside a choice is now drawn in the value chosen:
    here both blocks have `channels`, so it is drawn whichever is chosen, and the network built has it."""
    for section in ("  vary:\n    stages.body.1: {choice: [{conv: {channels: 3, kernel: 3}}, {conv: {channels: 5, "
                    "kernel: 1}}]}\n    stages.body.1.conv.channels: {int: [1, 3]}\n",
                    "  vary:\n    stages.body.1.channels: {int: [1, 3]}\n"
                    "    stages.body.1: {choice: [{conv: {channels: 3, kernel: 3}}, {conv: {channels: 5, "
                    "kernel: 1}}]}\n"):
        space = load_space(space_file(tmp_path, section))
        assert [v.key for v in space.variables][0] == "stages.body.1"  # the choice is drawn first
        for network in sample(space, 20, seed=0).networks:
            [channels] = [value for key, value in network.values.items() if key.endswith("channels")]
            assert network.spec.stages["body"][1].channels == channels


CONDITIONAL_HEAD = HEAD.replace("    - conv: {channels: $c2, kernel: 3, stride: 2, activation: relu}",
                                "    - residual: {channels: 8}")


@pytest.mark.parametrize("section, fragment, line", [
    ("  vary:\n    stages.body.1: {choice: [{residual: {channels: 8}}, {inception: {c1: 4, c2: [4, 4], c3: [4, 4], "
     "c4: 4}}]}\n    stages.body.1.inception.c9: {int: [1, 3]}\n",
     "stages.body.1.inception.c9 lives inside the choice stages.body.1 (its key starts with the choice's), but none "
     "of its values has that path (values: 0:residual, 1:inception)", 12),
    ("  vary:\n    stages.body.1: {choice: [{residual: {channels: 8}}, {inception: {c1: 4, c2: [4, 4], c3: [4, 4], "
     "c4: 4}}]}\n    stages.body.1.residual.channels: {int: [4, 16], name: width}\n"
     "    stages.body.1.inception.c1: {int: [1, 8], name: c1}\n  constraints: [width >= c1]\n",
     "width >= c1: reads c1, width, which live in different values of the choice stages.body.1 and are never drawn "
     "together, so it would never apply", 14),
    ("  vary:\n    c2: {choice: [4, 8]}\n    c2.0: {int: [1, 3]}\n", "none of its values has that path", 12),
    ("  vary:\n    stages.body.1: {choice: [{residual: {channels: 8}}, {inception: {c1: 4, c2: [4, 4], c3: [4, 4], "
     "c4: 4}}]}\n    stages.body.1.inception.c1: {int: [1, 3]}\n    stages.body.1.c1: {int: [1, 3]}\n",
     "the same path as the variable stages.body.1.inception.c1", 13),
], ids=["a path in no value of its choice", "a constraint across two values of one choice",
        "inside a choice of numbers", "one path twice in one value"])
def test_a_malformed_conditional_space_is_refused_at_its_line(capsys, tmp_path, section, fragment, line):
    path = tmp_path / "space.yaml"
    path.write_text(CONDITIONAL_HEAD + "space:\n" + section)
    code, out, _ = run(capsys, "validate", path)
    assert code == 1 and fragment in out and f"{path}:{line}:" in out, out
    code, _, err = run(capsys, "sample", path, "--out", tmp_path / "out")
    assert code == 1 and fragment in err and not (tmp_path / "out").exists()


def test_optuna_asks_a_trial_only_for_the_variables_of_the_branch_it_took():
    """Define-by-run: each conditional variable is one Optuna parameter, named by its key (stable across trials,
    distinct per branch), suggested only in the trials whose choice took its branch; TPE learns each from those."""
    import optuna

    from archspec.train.search import OptunaDraw

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = load_space(CONDITIONAL)
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0, n_startup_trials=5))
    for _ in range(30):
        trial = study.ask()
        values = space.draw(OptunaDraw(trial))
        assert set(trial.params) == set(values) in (INCEPTION, RESIDUAL)
        study.tell(trial, 1.0 if space.broken(values) is None else 0.0)
    taken = {t.params["stages.body.0"] for t in study.trials}
    assert taken == {"0:inception", "1:residual"}


def test_choices_nest_and_a_variable_is_drawn_only_when_every_choice_around_it_took_its_branch(tmp_path):
    section = ("  vary:\n    stages.body.1.inception.c2.1: {int: [8, 16], name: wide}\n"  # before its choices: fine
               "    stages.body.1.inception.c2: {choice: [[4, 4], [2, 4]], name: c2}\n"
               "    stages.body.1: {choice: [{residual: {channels: 8}}, {inception: {c1: 4, c2: [4, 4], c3: [4, 4], "
               "c4: 4}}], name: block}\n")
    path = tmp_path / "space.yaml"
    path.write_text(CONDITIONAL_HEAD + "space:\n" + section)
    space = load_space(path)
    assert [v.name for v in space.variables] == ["block", "c2", "wide"]
    taken = set()
    for network in sample(space, 40, seed=0).networks:
        shown = space.shown(network.values)
        taken.add(shown["block"])
        if shown["block"] == "0:residual":
            assert set(shown) == {"block"}
        else:
            assert set(shown) == {"block", "c2", "wide"}
            entry = network.tree["stages"]["body"][1]["inception"]
            chosen = network.values["stages.body.1.inception.c2"]  # [4, 4] or [2, 4], its first width kept
            assert list(entry["c2"]) == [chosen[0], shown["wide"]] and list(entry["c3"]) == [4, 4]
    assert taken == {"0:residual", "1:inception"}


def test_nested_choices_are_bounded_where_a_variable_inside_them_is_written(tmp_path, monkeypatch):
    """Each value of the choices around a variable is checked for its path: a hostile nesting is refused, not
    walked for hours."""
    import archspec.spec.space as space

    monkeypatch.setattr(space, "MAX_BRANCHES", 3)
    path = space_file(tmp_path, "  vary:\n    stages.body.1: {choice: [{conv: {channels: 1, kernel: 3}}, {conv: "
                                "{channels: 2, kernel: 3}}, {conv: {channels: 3, kernel: 3}}, {conv: {channels: 4, "
                                "kernel: 3}}]}\n    stages.body.1.conv.channels: {int: [1, 3]}\n")
    with pytest.raises(space.SpecError) as e:
        load_space(path)
    assert str(e.value).startswith(f"{path}:12:5: space.vary.stages.body.1.conv.channels: inside 4 values of nested "
                                   "choices; at most 3"), str(e.value)
