"""Fine-tuning against training from scratch, on scikit-learn's real digits (issue 22).

Pretrain a small BN network on digits 0-4 (all their training images, 10 outputs as the spec has), then train
on digits 5-9 with only 20 images a class (`--set num_classes=5`, labels 0-4): once from scratch, once starting
from the pretrained weights (`--init`, the output layer re-initialised by its new shape, the first stage frozen,
the head learning 10x faster), for the same epochs, seeds and settings (Adam, learning rate 0.005, batch 20). Writes bench/results/finetune-digits.json.

    python bench/finetune.py [--seeds 0 1 2 3 4] [--epochs 15]
"""
from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
from pathlib import Path

import numpy as onp

sys.path.insert(0, str(Path(__file__).resolve().parent))

SPEC = """
name: digits-cnn
input: {channels: 1, height: 28, width: 28}
args: {num_classes: 10}
stages:
  features:
    - conv: {channels: 16, kernel: 3, padding: 1, batchnorm: true, activation: relu}
    - maxpool: {kernel: 2, stride: 2}
  body:
    - conv: {channels: 32, kernel: 3, padding: 1, batchnorm: true, activation: relu}
    - maxpool: {kernel: 2, stride: 2}
  head:
    - global_avg_pool
    - dense: $num_classes
"""


def subsets(digits: Path, out: Path, shots: int) -> tuple[Path, Path]:
    """IDX folders: digits 0-4 (all), and 5-9 as labels 0-4 with `shots` training images a class."""
    from archspec.train.data import IDX_FILES, read_idx, write_idx

    split = {s: (read_idx(digits / f"{IDX_FILES[s][0]}.gz"), read_idx(digits / IDX_FILES[s][1]))
             for s in ("train", "test")}
    first, second = out / "digits-0-4", out / "digits-5-9"
    rng = onp.random.default_rng(0)
    for folder, low in ((first, True), (second, False)):
        folder.mkdir(parents=True)
        for name, (images, labels) in split.items():
            keep = onp.flatnonzero(labels < 5) if low else onp.flatnonzero(labels >= 5)
            if name == "train" and not low:
                keep = onp.concatenate([rng.choice(keep[labels[keep] == d], shots, replace=False)
                                        for d in range(5, 10)])
            write_idx(folder / IDX_FILES[name][0], images[keep])
            write_idx(folder / IDX_FILES[name][1], (labels[keep] - (0 if low else 5)).astype(onp.uint8))
    return first, second


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--shots", type=int, default=20)
    args = parser.parse_args()

    from precision import digits_folder

    from archspec.train import Config, train

    quiet = io.StringIO()
    common = dict(batch_size=20, optimizer="adam", lr=0.005)  # the same for every run; test_train's settings
    results: dict = {"spec": SPEC, "shots_per_class": args.shots, "epochs": args.epochs, "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        spec = root / "digits-cnn.yaml"
        spec.write_text(SPEC)
        first, second = subsets(digits_folder(root / "digits"), root, args.shots)
        history, pre = train(spec, root / "pre", Config(epochs=20, data_dir=str(first), seed=0, **common),
                             stream=quiet)
        results["pretrain_test_acc_0_4"] = history[-1]["test_acc"]
        for seed in args.seeds:
            row = {"seed": seed}
            for name, extra in (("scratch", {}), ("finetuned", {"init": str(pre), "freeze": "features",
                                                                 "lr_mult": "head=10"})):
                config = Config(epochs=args.epochs, data_dir=str(second), seed=seed, **{**common, **extra})
                history, _ = train(spec, root / f"{name}-{seed}", config, {"num_classes": 5}, stream=quiet)
                row[name] = history[-1]["test_acc"]
            results["runs"].append(row)
            print(json.dumps(row), flush=True)
    for name in ("scratch", "finetuned"):
        results[f"mean_{name}"] = float(onp.mean([r[name] for r in results["runs"]]))
    out = Path(__file__).resolve().parent / "results" / "finetune-digits.json"
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps({k: v for k, v in results.items() if k not in ("spec", "runs")}))


if __name__ == "__main__":
    main()
