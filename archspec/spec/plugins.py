"""Kinds of the user's own, from code the user names: a module or a Python file given with `--plugin`, or an
installed package's entry point in the group `archspec.kinds`. A spec file never names code: validating an
untrusted spec executes nothing of its own."""
from __future__ import annotations

import importlib
import importlib.util
import sys
from importlib import metadata
from pathlib import Path

from .diagnostics import InputError

ENTRY_POINT_GROUP = "archspec.kinds"
_loaded: set[str] = set()


def load_plugin(name: str) -> None:
    """Import a module by name (`mypackage.kinds`) or a Python file (`kinds.py`), whose `@register` calls add
    its kinds. Loading the same plugin twice does nothing."""
    key = str(Path(name).resolve()) if name.endswith(".py") else name
    if key in _loaded:
        return
    try:
        if name.endswith(".py"):
            path = Path(name)
            if not path.is_file():
                raise InputError(f"--plugin {name}: no such file")
            spec = importlib.util.spec_from_file_location(f"archspec_plugin_{path.stem}", path)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module
            spec.loader.exec_module(module)
        else:
            importlib.import_module(name)
    except InputError:
        raise
    except SystemExit as e:  # sys.exit(0) at import would end the command as if it had checked everything
        raise InputError(f"--plugin {name}: exited while being imported (SystemExit: {e.code!r}); a plugin "
                         "only defines and registers kinds") from None
    except Exception as e:  # the user's code: say which plugin failed and how, not where in archspec
        raise InputError(f"--plugin {name}: {type(e).__name__}: {e}") from None
    _loaded.add(key)


def load_entry_points() -> None:
    """The kinds of every installed package that declares an `archspec.kinds` entry point."""
    for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if entry_point.value in _loaded:
            continue
        try:
            entry_point.load()
        except (Exception, SystemExit) as e:  # SystemExit: see load_plugin
            raise InputError(f"entry point {entry_point.name} = {entry_point.value} ({ENTRY_POINT_GROUP}): "
                             f"{type(e).__name__}: {e}") from None
        _loaded.add(entry_point.value)
