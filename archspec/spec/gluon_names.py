"""Names a stage or an auxiliary head may not have: the public attributes of the network archspec builds
(`gluon.modules.Network`, a Gluon HybridBlock), since stage names become its child blocks' attribute names
(`net.b3`). Read from MXNet 1.9.1 without importing it here (the spec core never imports MXNet);
tests/test_plugins.py checks the list against `dir(Network)`, so a new MXNet or Network attribute fails a test."""
from __future__ import annotations

from pydantic import ValidationInfo

BLOCK_ATTRIBUTES = frozenset({
    "add_aux", "add_stage", "apply", "cast", "collect_params", "export", "folded", "forward", "give_outputs",
    "hybrid_forward", "hybridize", "infer_shape", "infer_type", "initialize", "load", "load_parameters",
    "load_params", "name", "name_scope", "optimize_for", "output_names", "params", "prefix", "register_child",
    "register_forward_hook", "register_forward_pre_hook", "register_op_hook", "rewrites", "run", "save",
    "save_parameters", "save_params", "spec", "stage_names", "summary", "training_block", "transferred",
})


def not_a_block_attribute(name: str, info: ValidationInfo) -> str:
    """A stage's (or, in `aux`, a head's) name, refused when it would shadow an attribute of the built network."""
    if name in BLOCK_ATTRIBUTES:
        what = "auxiliary head" if info.field_name == "aux" else "stage"
        raise ValueError(f"{what} name {name!r} clashes with an attribute of Gluon blocks (net.{name}); choose "
                         "another")
    return name
