"""The few Gluon blocks that MXNet does not ship: the ones every spec needs are in `mxnet.gluon.nn`.

Imported only by the builder, so importing archspec never imports MXNet.
"""
from __future__ import annotations

from functools import reduce

from mxnet.gluon import nn


class ParallelBlock(nn.HybridBlock):
    """Runs each branch on the same input and merges the outputs.

    The loop over branches runs once, when `hybridize()` traces the graph; afterwards the cached
    graph holds the branches and the merge as plain operators.
    """

    def __init__(self, branches, merge: str):
        super().__init__()
        self._merge = merge
        self._names = []  # None marks an identity branch
        for i, branch in enumerate(branches, 1):
            name = None if branch is None else f"branch{i}"
            if branch is not None:
                setattr(self, name, branch)  # registers the child; `block.branch2` reads like D2L's b2_1
            self._names.append(name)

    def hybrid_forward(self, F, x):
        outs = [x if name is None else getattr(self, name)(x) for name in self._names]
        if self._merge == "concat":
            return F.np.concatenate(outs, axis=1)
        op = F.np.add if self._merge == "add" else F.np.multiply
        return reduce(op, outs)


class LRNBlock(nn.HybridBlock):
    """Local response normalisation (Gluon has the operator, not a block)."""

    def __init__(self, size: int, alpha: float, beta: float, k: float):
        super().__init__()
        self._options = dict(nsize=size, alpha=alpha, beta=beta, knorm=k)

    def hybrid_forward(self, F, x):
        return F.LRN(x.as_nd_ndarray(), **self._options).as_np_ndarray()


class Network(nn.HybridSequential):
    """The built network: a `HybridSequential` of named stages (`net.b3`, `net[2]`) that knows its spec."""

    def __init__(self, spec):
        super().__init__()
        self.spec = spec

    def add_stage(self, name: str, stage: nn.HybridSequential) -> None:
        setattr(self, name, stage)  # registers the child under the stage's name
