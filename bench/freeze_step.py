"""A training step of GoogLeNet (1x96x96, batch 64, SGD) with b1-b3 frozen against none frozen (issue 22):
frozen arrays have grad_req null, so MXNet computes no weight gradient for them, and no input gradient below
the lowest trained layer. Interleaved: every round times one step of each, in turn; the median of the rounds.

    python bench/freeze_step.py [--rounds 20]
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

SPEC = Path(__file__).resolve().parent.parent / "specs" / "googlenet.yaml"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()

    import mxnet as mx
    from mxnet import autograd, gluon, np

    from archspec.gluon.build import build_model
    from archspec.gluon.tuning import freeze

    cases = {}
    for name, frozen in (("none frozen", None), ("b1-b3 frozen", "b1,b2,b3")):
        mx.random.seed(0)
        net = build_model(SPEC)
        freeze(net, frozen)
        cases[name] = (net, gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.01}))
    x = np.random.uniform(size=(args.batch, 1, 96, 96))
    y = np.random.randint(0, 10, size=(args.batch,))
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    times: dict[str, list[float]] = {name: [] for name in cases}
    for round_ in range(args.rounds + 2):  # the first two rounds trace and warm up
        for name, (net, trainer) in cases.items():
            started = time.perf_counter()
            with autograd.record():
                loss = loss_fn(net(x), y)
            loss.backward()
            trainer.step(args.batch)
            loss.wait_to_read()
            mx.nd.waitall()
            if round_ >= 2:
                times[name].append(time.perf_counter() - started)
    base = statistics.median(times["none frozen"])
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name}: {median * 1000:.0f} ms a step (median of {len(values)}), x{base / median:.2f}")


if __name__ == "__main__":
    main()
