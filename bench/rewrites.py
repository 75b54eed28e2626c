"""Each graph rewrite against the plain build, in one process: A and B alternate, round after round (each first in
every other round), and the ratio of each round is kept, so a neighbour's load on a shared machine hits both sides
alike; the median ratio and its spread (min..max over rounds) are printed, one JSON line a (network, rewrite, mode).

    OMP_NUM_THREADS=2 python bench/rewrites.py specs/googlenet.yaml specs/googlenet-bn.yaml --rounds 5

Modes: `infer` (forward at --batch, what `for_inference(net, "fp32")` gives) and `train` (forward, backward and
SGD update). fold-batchnorm and onednn act on inference only, so they are timed there."""
import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import images_per_second  # noqa: E402


def step(net, mode, batch):
    """One batch of `net` in `mode` (`train`, or inference through `for_inference(net, "fp32")`), as a function."""
    import mxnet as mx
    from mxnet import autograd, gluon, np

    from archspec.gluon.precision import for_inference
    from archspec.train.loop import loss_and_outputs

    x = np.random.uniform(size=(batch,) + net.spec.input.shape)
    if mode != "train":
        block = for_inference(net, "fp32")
        return lambda: block(x).wait_to_read()
    y = np.array(mx.nd.random.randint(0, 2, shape=(batch,)).asnumpy())
    loss_fn, trainer = gluon.loss.SoftmaxCrossEntropyLoss(), gluon.Trainer(net.collect_params(), "sgd",
                                                                         {"learning_rate": 0.01})

    def train():
        with autograd.record():
            loss, _ = loss_and_outputs(net, net, loss_fn, x, y)  # with auxiliary heads: theirs weighted too
        loss.backward()
        trainer.step(batch)
        loss.wait_to_read()
    return train


def compare(a, b, batch, rounds, seconds):
    """B's speed over A's, each round's ratio with each side first in every other round (no order bias): the
    median, the spread and every round's (A, B) images/s."""
    ratios, speeds = [], []
    for k in range(rounds):
        first, second = (b, a) if k % 2 else (a, b)
        one, two = images_per_second(first, batch, seconds), images_per_second(second, batch, seconds)
        speed_a, speed_b = (two, one) if k % 2 else (one, two)
        ratios.append(speed_b / speed_a)
        speeds.append((round(speed_a, 1), round(speed_b, 1)))
    return {"ratio": round(statistics.median(ratios), 3), "spread": [round(min(ratios), 3), round(max(ratios), 3)],
            "images_per_second": speeds}


def main() -> None:
    from archspec.gluon.build import build_model

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("specs", nargs="+")
    p.add_argument("--rewrites", default="fuse-siblings,fold-batchnorm,onednn")
    p.add_argument("--modes", default="infer,train")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--seconds", type=float, default=2.0)
    args = p.parse_args()
    for spec in args.specs:
        for rewrite in args.rewrites.split(","):
            for mode in args.modes.split(","):
                if mode == "train" and rewrite != "fuse-siblings":
                    continue  # the others change only the inference graph
                a, b = (step(build_model(spec, rewrites=r), mode, args.batch) for r in ("none", rewrite))
                print(json.dumps({"spec": Path(spec).stem, "rewrite": rewrite, "mode": mode, "batch": args.batch,
                                  **compare(a, b, args.batch, args.rounds, args.seconds)}), flush=True)


if __name__ == "__main__":
    main()
