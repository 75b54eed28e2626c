"""Tests that follow the registry: every layer kind archspec ships is complete (a Gluon constructor of its own; its
shape rule and counts are checked against Gluon by the differential test in test_analysis.py, which draws every
kind), and the README's generated sections are what the commands write."""
import pytest

from archspec import REGISTRY
from archspec.cli import main
from archspec.gluon.layers import CONSTRUCTORS
from conftest import ROOT

BUILT_IN = sorted(name for name, cls in REGISTRY.items() if cls.__module__.startswith("archspec."))


@pytest.mark.parametrize("kind", BUILT_IN)
def test_every_kind_archspec_ships_has_a_gluon_constructor_of_its_own(kind):
    """Not its parent's: a kind registered without one would build as its parent, or fail only when built."""
    assert REGISTRY[kind] in CONSTRUCTORS


@pytest.mark.parametrize("command,section", [("schema", "fields"), ("blocks", "blocks")])
def test_the_readme_sections_are_what_the_commands_write(tmp_path, capsys, command, section):
    readme = tmp_path / "README.md"
    readme.write_text((ROOT / "README.md").read_text(encoding="utf-8"), encoding="utf-8")
    assert main([command, "--readme", str(readme)]) == 0
    assert f"the {section} section is current" in capsys.readouterr().err, f"run `archspec {command} --readme README.md`"
    assert readme.read_text(encoding="utf-8") == (ROOT / "README.md").read_text(encoding="utf-8")


def test_a_stale_section_is_rewritten_in_place_and_the_rest_kept(tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text("# mine\n\n<!-- blocks:start -->\n| old | table |\n<!-- blocks:end -->\n\nafter\n", encoding="utf-8")
    assert main(["blocks", "--readme", str(readme)]) == 0
    text = readme.read_text(encoding="utf-8")
    assert text.startswith("# mine\n\n<!-- blocks:start -->\n| block | arguments | what it is |\n")
    assert "| `inception` |" in text and "| old |" not in text and text.endswith("|\n<!-- blocks:end -->\n\nafter\n")
    assert "rewritten" in capsys.readouterr().err


def test_a_file_without_the_markers_is_refused_and_left_as_it_is(tmp_path, capsys):
    readme = tmp_path / "notes.md"
    readme.write_text("# no markers\n", encoding="utf-8")
    assert main(["schema", "--readme", str(readme)]) == 1
    assert "notes.md: no `<!-- fields:start -->`" in capsys.readouterr().err
    assert readme.read_text(encoding="utf-8") == "# no markers\n"
