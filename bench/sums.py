"""Residual sums through MXNet's `elemwise_add` (the build's choice for a `merge: add` of equal shapes) against
numpy's `add` (what the build used before), in one process, A and B alternating round after round as
bench/rewrites.py does; one JSON line a (network, mode).

    OMP_NUM_THREADS=2 python bench/sums.py specs/resnet18.yaml specs/mobilenetv2.yaml --rounds 5

Modes: `train` (forward, backward, SGD update), `infer` (the plain inference graph, `--rewrites none`) and
`onednn` (the default inference graph, where oneDNN fuses a sum into the convolution before it)."""
import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rewrites import compare, step  # noqa: E402


def _net(spec, elemwise, mode):
    from archspec.gluon.build import build_model
    from archspec.gluon.modules import ParallelBlock

    net = build_model(spec, rewrites="onednn" if mode == "onednn" else "none")
    if not elemwise:  # numpy's add, as a broadcasting sum runs
        net.apply(lambda b: setattr(b, "_same_shapes", False) if isinstance(b, ParallelBlock) else None)
    return net


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("specs", nargs="+")
    p.add_argument("--modes", default="train,infer,onednn")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--seconds", type=float, default=2.0)
    args = p.parse_args()
    for spec in args.specs:
        for mode in args.modes.split(","):
            a, b = (step(_net(spec, elemwise, mode), mode, args.batch) for elemwise in (False, True))
            print(json.dumps({"spec": Path(spec).stem, "mode": mode, "batch": args.batch,
                              **compare(a, b, args.batch, args.rounds, args.seconds)}), flush=True)


if __name__ == "__main__":
    main()
