"""bfloat16 (AMP) and INT8 (oneDNN quantization) inference against float32, on a GoogLeNet that has
learned something: trained for a few epochs on scikit-learn's real 8x8 digits, upsampled and written as
IDX files (needs scikit-learn, a dev dependency). Speed is interleaved, as in run.py.
Run: python bench/precision.py [--epochs 6] [--out FILE], or python bench/run.py --precision."""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

import archspec.gluon  # noqa: E402,F401  sets MXNet's thread count, before anything imports MXNet
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from timing import images_per_second  # noqa: E402


def digits_folder(folder: Path) -> Path:
    """scikit-learn's 1,797 real 8x8 digits, upsampled to 28x28 uint8 and split 1,437 / 360 into the four
    Fashion-MNIST IDX files in `folder` (the tests train on them too)."""
    import numpy as onp
    from sklearn.datasets import load_digits

    from archspec.train.data import IDX_FILES, write_idx

    d = load_digits()
    images = onp.pad(onp.kron(d.images, onp.ones((3, 3))) * (255 / 16), ((0, 0), (2, 2), (2, 2)))
    images, labels = images.round().astype(onp.uint8), d.target.astype(onp.uint8)
    order = onp.random.default_rng(0).permutation(len(labels))
    for split, index in (("train", order[:1437]), ("test", order[1437:])):
        write_idx(folder / f"{IDX_FILES[split][0]}.gz", images[index])
        write_idx(folder / IDX_FILES[split][1], labels[index])  # plain and gzipped files both work
    return folder


def reduced_precision(net=None, smoke: bool = False, epochs: int = 6) -> dict:
    from archspec import build_model
    from archspec.gluon.build import load_parameters
    from archspec.train.data import load_idx_folder, to_input
    from archspec.gluon.precision import supports_bfloat16, to_bfloat16, to_int8
    from archspec.train import Config, train

    spec = ROOT / "specs" / "googlenet.yaml"
    with tempfile.TemporaryDirectory() as tmp:
        data = digits_folder(Path(tmp))
        trained = not smoke
        training = {}
        if trained:  # the digits benchmark: the same run in float32 and, where the CPU has it, in bfloat16
            for precision in ("fp32", "bf16") if supports_bfloat16() else ("fp32",):
                config = Config(epochs=epochs, batch_size=32, lr=3e-4, optimizer="adam", data_dir=str(data),
                                precision=precision)
                history, _ = train(spec, Path(tmp) / precision, config, stream=open(os.devnull, "w"))
                training[precision] = {"test_accuracy": history[-1]["test_acc"],
                                       "images_per_s": statistics.median(h["images_per_s"] for h in history)}
            net = build_model(spec)
            load_parameters(net, Path(tmp) / "fp32" / "final.params")
        net = net or build_model(spec)
        test = load_idx_folder(data, "test")
        x = to_input(test.images, (96, 96), None)
        calibration = to_input(load_idx_folder(data, "train").images[:64 if smoke else 256], (96, 96), None)
    labels = test.labels
    blocks = {"float32": net, "bfloat16": to_bfloat16(net), "int8": to_int8(net, calibration)}
    outputs = {name: block(x).asnumpy() for name, block in blocks.items()}
    batch = x[:2 if smoke else 32]
    speed = {name: [] for name in blocks}
    for r in range(1 if smoke else 5):
        for name, block in blocks.items():
            speed[name].append(images_per_second(lambda: block(batch).wait_to_read(), len(batch),
                                                 0 if smoke else 1.0))
    ref = outputs["float32"]
    result = {"trained_epochs": epochs if trained else 0, "test_examples": len(labels), "training": training}
    for name, out in outputs.items():
        result[name] = {
            "images_per_s_batch32": statistics.median(speed[name]),
            "speedup": statistics.median(s / f for s, f in zip(speed[name], speed["float32"])),
            "test_accuracy": float((out.argmax(1) == labels).mean()),
            "top1_agreement": float((out.argmax(1) == ref.argmax(1)).mean()),
            "max_abs_diff": float(abs(out - ref).max()),
            "max_abs_logit": float(abs(ref).max())}
    return result


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    result = reduced_precision(smoke=args.smoke, epochs=args.epochs)
    text = json.dumps(result, indent=1)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
