"""bfloat16 (AMP) and INT8 (oneDNN quantization) against float32 on scikit-learn's real 8x8 digits, upsampled
and written as IDX files (needs scikit-learn, a dev dependency):

- training: each of TRAINED trained for a few epochs in float32 and in bfloat16 (`archspec train --precision
  bf16`) from the same initial weights and data order (one seed), for several seeds: paired runs, so that the
  difference between the precisions is not confused with the difference between two seeds;
- inference: D2L's GoogLeNet as trained in float32 (the first seed) computed in bfloat16 and in INT8: accuracy,
  top-1 agreement with float32 and speed, interleaved as in run.py.

Run: python bench/precision.py [--epochs 6] [--seeds 0 1 2] [--out FILE], or python bench/run.py --precision."""
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

# D2L's GoogLeNet, whose first epochs on 1,437 digits are a plateau at chance (loss 2.30) that a run leaves or
# not depending on its seed, in either precision; and the same network with batch norm, which always leaves it.
TRAINED = ("googlenet", "googlenet-bn")
SEEDS = (0, 1, 2)


def digits_folder(folder: Path) -> Path:
    """scikit-learn's 1,797 real 8x8 digits, upsampled to 28x28 uint8 and split 1,437 / 360 into the four
    Fashion-MNIST IDX files in `folder` (the tests train on them too)."""
    import numpy as onp
    from sklearn.datasets import load_digits

    from archspec.train.data import IDX_FILES, write_idx

    folder.mkdir(parents=True, exist_ok=True)
    d = load_digits()
    images = onp.pad(onp.kron(d.images, onp.ones((3, 3))) * (255 / 16), ((0, 0), (2, 2), (2, 2)))
    images, labels = images.round().astype(onp.uint8), d.target.astype(onp.uint8)
    order = onp.random.default_rng(0).permutation(len(labels))
    for split, index in (("train", order[:1437]), ("test", order[1437:])):
        write_idx(folder / f"{IDX_FILES[split][0]}.gz", images[index])
        write_idx(folder / IDX_FILES[split][1], labels[index])  # plain and gzipped files both work
    return folder


def paired_training(data: Path, runs: Path, epochs: int, seeds: tuple[int, ...]) -> dict:
    """{spec: {"runs": [{seed, precision, test_accuracy, images_per_s}], "fp32"|"bf16": mean accuracy and speed,
    "bf16_minus_fp32": the paired differences}} for each of TRAINED; bfloat16 only where the CPU has it."""
    from archspec.gluon.precision import supports_bfloat16
    from archspec.train import Config, train

    precisions = ("fp32", "bf16") if supports_bfloat16() else ("fp32",)
    result = {}
    for name in TRAINED:
        done = []
        for seed in seeds:
            for precision in precisions:
                config = Config(epochs=epochs, batch_size=32, lr=3e-4, optimizer="adam", data_dir=str(data),
                                precision=precision, seed=seed)
                with open(os.devnull, "w") as quiet:
                    history, _ = train(ROOT / "specs" / f"{name}.yaml", runs / f"{name}-{seed}-{precision}", config,
                                       stream=quiet)
                done.append({"seed": seed, "precision": precision, "test_accuracy": history[-1]["test_acc"],
                             "images_per_s": statistics.median(h["images_per_s"] for h in history)})
        by = {p: [r for r in done if r["precision"] == p] for p in precisions}
        result[name] = {"runs": done, **{p: {"mean_test_accuracy": statistics.mean(r["test_accuracy"] for r in rs),
                                             "images_per_s": statistics.median(r["images_per_s"] for r in rs)}
                                         for p, rs in by.items()}}
        if "bf16" in by:
            result[name]["bf16_minus_fp32"] = [b["test_accuracy"] - f["test_accuracy"]
                                               for f, b in zip(by["fp32"], by["bf16"])]
    return result


def reduced_precision(net=None, smoke: bool = False, epochs: int = 6, seeds: tuple[int, ...] = SEEDS) -> dict:
    from archspec import build_model
    from archspec.gluon.build import load_parameters
    from archspec.gluon.precision import supports_bfloat16, to_bfloat16, to_int8
    from archspec.train.data import load_idx_folder, to_input

    spec = ROOT / "specs" / "googlenet.yaml"
    with tempfile.TemporaryDirectory() as tmp:
        data = digits_folder(Path(tmp) / "digits")
        training = {} if smoke else paired_training(data, Path(tmp), epochs, seeds)
        if not smoke:  # inference from the float32 GoogLeNet of the first seed
            net = build_model(spec)
            load_parameters(net, Path(tmp) / f"googlenet-{seeds[0]}-fp32" / "final.params")
        net = net or build_model(spec)
        test = load_idx_folder(data, "test")
        x = to_input(test.images, (96, 96), None)
        calibration = to_input(load_idx_folder(data, "train").images[:64 if smoke else 256], (96, 96), None)
    labels = test.labels
    blocks = {"float32": net, "int8": to_int8(net, calibration)}
    if supports_bfloat16():  # without AVX-512 BF16, oneDNN 2.4 cannot make a bfloat16 convolution at all
        blocks["bfloat16"] = to_bfloat16(net)
    outputs = {name: block(x).asnumpy() for name, block in blocks.items()}
    batch = x[:2 if smoke else 32]
    speed = {name: [] for name in blocks}
    for r in range(1 if smoke else 5):
        for name, block in blocks.items():
            speed[name].append(images_per_second(lambda: block(batch).wait_to_read(), len(batch),
                                                 0 if smoke else 1.0))
    ref = outputs["float32"]
    result = {"trained_epochs": 0 if smoke else epochs, "seeds": [] if smoke else list(seeds),
              "test_examples": len(labels), "training": training}
    for name, out in outputs.items():
        result[name] = {
            "images_per_s_batch32": statistics.median(speed[name]),
            "speedup": statistics.median(s / f for s, f in zip(speed[name], speed["float32"])),
            "test_accuracy": float((out.argmax(1) == labels).mean()),
            "top1_agreement": float((out.argmax(1) == ref.argmax(1)).mean()),
            "max_abs_diff": float(abs(out - ref).max()),
            "max_abs_logit": float(abs(ref).max())}
    return result


def report(p: dict) -> list[str]:
    """The lines bench/run.py and this script print for `reduced_precision`'s result."""
    lines = [f"reduced precision on digits ({p['test_examples']} test images); inference of GoogLeNet trained "
             f"{p['trained_epochs']} epochs in float32:"]
    for mode in ("float32", "bfloat16", "int8"):
        if mode not in p:
            lines.append(f"  {mode:<9} not measured: this CPU has no AVX-512 BF16")
            continue
        q = p[mode]
        lines.append(f"  {mode:<9} forward@32 {q['images_per_s_batch32']:,.1f} img/s ({q['speedup']:.2f}x), test "
                     f"accuracy {q['test_accuracy']:.1%}, top-1 agreement {q['top1_agreement']:.1%}, "
                     f"max |logit diff| {q['max_abs_diff']:.3g} (max |logit| {q['max_abs_logit']:.3g})")
    if p["training"]:
        lines.append(f"training {p['trained_epochs']} epochs (Adam, lr 3e-4, batch 32) from the same weights and "
                     f"data order in each precision, seeds {', '.join(map(str, p['seeds']))}:")
    for name, t in p["training"].items():
        for precision in ("fp32", "bf16"):
            if precision in t:
                accuracies = " ".join(f"{r['test_accuracy']:.1%}" for r in t["runs"] if r["precision"] == precision)
                lines.append(f"  {name:<13} {precision}: test accuracy {accuracies} (mean "
                             f"{t[precision]['mean_test_accuracy']:.1%}), {t[precision]['images_per_s']:,.1f} img/s")
        if "bf16_minus_fp32" in t:
            lines.append(f"  {name:<13} bf16 - fp32, paired: "
                         + " ".join(f"{d * 100:+.1f}" for d in t["bf16_minus_fp32"])
                         + f" points (mean {statistics.mean(t['bf16_minus_fp32']) * 100:+.1f}); bf16 speed "
                         f"{t['bf16']['images_per_s'] / t['fp32']['images_per_s']:.2f}x fp32")
    return lines


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    result = reduced_precision(smoke=args.smoke, epochs=args.epochs, seeds=tuple(args.seeds))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    print("\n".join(report(result)))


if __name__ == "__main__":
    main()
