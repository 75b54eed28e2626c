"""Residual sums through MXNet's `elemwise_add` (the build's choice for a `merge: add` of equal shapes) against
numpy's `add` (what the build used before), in one process, A and B alternating round after round as
bench/rewrites.py does; one JSON line a (network, mode).

    OMP_NUM_THREADS=2 python bench/sums.py specs/resnet18.yaml specs/mobilenetv2.yaml --rounds 5

Modes: `train` (forward, backward, SGD update), `infer` (the plain inference graph, `--rewrites none`) and
`onednn` (the default inference graph, where oneDNN fuses a sum into the convolution before it)."""
import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import images_per_second  # noqa: E402


def _step(spec, elemwise, mode, batch):
    import mxnet as mx
    from mxnet import autograd, gluon, np

    from archspec.gluon.build import build_model
    from archspec.gluon.modules import ParallelBlock
    from archspec.gluon.precision import for_inference

    net = build_model(spec, rewrites="onednn" if mode == "onednn" else "none")
    if not elemwise:
        net.apply(lambda b: setattr(b, "_same_shapes", False) if isinstance(b, ParallelBlock) else None)
    x = np.random.uniform(size=(batch,) + net.spec.input.shape)
    if mode != "train":
        block = for_inference(net, "fp32")
        return lambda: block(x).wait_to_read()
    y = np.array(mx.nd.random.randint(0, 2, shape=(batch,)).asnumpy())
    loss_fn, trainer = gluon.loss.SoftmaxCrossEntropyLoss(), gluon.Trainer(net.collect_params(), "sgd",
                                                                         {"learning_rate": 1e-9})

    def step():
        with autograd.record():
            loss = loss_fn(net(x), y)
        loss.backward()
        trainer.step(batch)
        loss.wait_to_read()
    return step


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
            a, b = _step(spec, False, mode, args.batch), _step(spec, True, mode, args.batch)
            ratios, speeds = [], []
            for k in range(args.rounds):  # each side first in every other round
                first, second = (b, a) if k % 2 else (a, b)
                one, two = images_per_second(first, args.batch, args.seconds), \
                    images_per_second(second, args.batch, args.seconds)
                numpy_add, elemwise_add = (two, one) if k % 2 else (one, two)
                ratios.append(elemwise_add / numpy_add)
                speeds.append((round(numpy_add, 1), round(elemwise_add, 1)))
            print(json.dumps({"spec": Path(spec).stem, "mode": mode, "batch": args.batch,
                              "elemwise_add / numpy add": round(statistics.median(ratios), 3),
                              "spread": [round(min(ratios), 3), round(max(ratios), 3)],
                              "images_per_second": speeds}), flush=True)


if __name__ == "__main__":
    main()
