"""Fine-tuning settings on a built network: frozen arrays (`--freeze b1,b2`) and per-stage learning-rate
multipliers (`--lr-mult head=10`). Both name stages or glob patterns over parameter paths (`b3.*.gamma`)."""
from __future__ import annotations

import fnmatch
from typing import Any, Mapping, Sequence, Union

from mxnet.gluon import nn

from ..spec.diagnostics import InputError
from .compat import params_by_path, use_global_stats
from .modules import Network


def _names(text: Union[str, Sequence[str], None]) -> list[str]:
    items = text.split(",") if isinstance(text, str) else list(text or [])
    return [item.strip() for item in items if item.strip()]


def select(net: Network, pattern: str, option: str) -> list[str]:
    """The parameter paths of a stage name (`b3`) or matching a glob (`b3.0.*`, `*.gamma`); an `InputError`
    when there are none."""
    paths = list(params_by_path(net))
    chosen = [p for p in paths if p.startswith(pattern + ".") or fnmatch.fnmatchcase(p, pattern)]
    if not chosen:
        raise InputError(f"{option} {pattern}: no stage or parameter path matches (stages: "
                         f"{', '.join(net.stage_names)}; paths look like {paths[0] if paths else '-'})")
    return chosen


def freeze(net: Network, patterns: Union[str, Sequence[str], None]) -> list[str]:
    """Freeze the named stages or paths: their arrays get `grad_req='null'` (no gradient, no update) and a batch
    norm whose scale is frozen normalises with its running statistics, which then stay as they are. Call before
    the network first runs (the graph is traced then). Returns the frozen paths."""
    frozen: list[str] = []
    params = params_by_path(net)
    for pattern in _names(patterns):
        frozen += [p for p in select(net, pattern, "--freeze") if p not in frozen]
    for path in frozen:
        params[path].grad_req = "null"
    norms: list[Any] = []
    net.apply(lambda block: norms.append(block) if isinstance(block, nn.BatchNorm) else None)
    for block in norms:
        if block.gamma.grad_req == "null":
            use_global_stats(block)
    return frozen


def lr_mult(net: Network, factors: Mapping[str, float]) -> dict[str, float]:
    """The learning rate of the arrays of each stage or glob times its factor (Gluon's `Parameter.lr_mult`), as
    `train.config.factors` reads them from `head=10,b5=2`. Returns the factor of each path changed."""
    params, changed = params_by_path(net), {}
    for pattern, factor in factors.items():
        for path in select(net, pattern, "--lr-mult"):
            params[path].lr_mult = factor
            changed[path] = factor
    return changed
