"""The streamed data pipeline: images/s and peak memory, beside PyTorch's DataLoader with torchvision's transforms.

    python bench/stream.py --images 20000 --workers 2 --out bench/results/stream.json

It generates a folder of JPEG images (256x256, 100 classes: ten shapes in ten colours, each drawn at a random
place, size and angle over a noisy background: a task, not noise), packs it as RecordIO with `archspec pack`, and
measures, each in a fresh process:
- pipeline: images/s of decode + ImageNet augmentation (random resized crop to 224, flip, colour jitter,
  lighting, normalise) to float32, for archspec's image-folder stream, its RecordIO stream, and (if torchvision
  is installed) torch.utils.data.DataLoader + torchvision.transforms with the same operations and workers;
- memory: peak RSS (the process and its largest worker) of --batches batches from N and 2N images, streamed and in
  memory (the in-memory path decodes every image at --memory-size before training, as earlier releases did);
- training: googlenet-imagenet at --train-width of its channels trained for one epoch from the RecordIO stream of
  --train-images images with the ImageNet recipe (specs/recipes/googlenet-imagenet.yaml), and the steps' share of
  the wall time (metrics.json's step_share; the rest is the wait for data).
The figures depend on the machine's load: quote them with the machine and its load.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHAPES = 10
COLOURS = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
           (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212)]
AUGMENT = [{"random_resized_crop": {"size": 224}}, "flip",
           {"color_jitter": {"brightness": 0.4, "contrast": 0.4, "saturation": 0.4}}, {"lighting": {"alpha": 0.1}},
           {"normalize": {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}}]


def generate(folder: Path, images: int, seed: int = 0) -> Path:
    """`images` JPEGs in 100 class folders (shape k-gon, colour c), under folder/train and folder/test (10%)."""
    import numpy as onp
    from PIL import Image, ImageDraw

    rng = onp.random.default_rng(seed)
    done = folder / f".done-{images}"
    if done.exists():
        return folder
    for i in range(images):
        label = i % (SHAPES * len(COLOURS))
        sides, colour = 3 + label // len(COLOURS), COLOURS[label % len(COLOURS)]
        background = rng.integers(0, 96, (32, 32, 3), dtype=onp.uint8)
        image = Image.fromarray(background).resize((256, 256), Image.Resampling.BILINEAR)
        cx, cy, r = rng.uniform(70, 186), rng.uniform(70, 186), rng.uniform(30, 70)
        angle = rng.uniform(0, 2 * math.pi)
        points = [(cx + r * math.cos(angle + 2 * math.pi * k / sides), cy + r * math.sin(angle + 2 * math.pi * k / sides))
                  for k in range(sides)]
        ImageDraw.Draw(image).polygon(points, fill=colour)
        split = "test" if (i // 100) % 10 == 9 else "train"  # every tenth round of the 100 classes
        target = folder / split / f"shape{sides:02d}-colour{label % len(COLOURS)}"
        target.mkdir(parents=True, exist_ok=True)
        image.save(target / f"{i:06d}.jpg", quality=90)
    done.touch()
    return folder


def peak_rss_mib() -> float:
    """Peak resident memory of this process plus that of its largest finished child (a worker), MiB: pages a
    forked worker shares with this process count twice (an upper bound)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return (own + children) / 1024


def archspec_pass(data: Path, loader: str, workers: int, batches: int, size: int) -> dict[str, float]:
    """Batches of the training split through archspec's pipeline: images/s and peak RSS."""
    from archspec.train.config import Config
    from archspec.train.stream import prepare

    augment = AUGMENT if size == 224 else [{"random_resized_crop": {"size": size}}, *AUGMENT[1:]]
    if loader == "memory":  # it holds every image at the network's size, where transforms cannot take them
        augment = []
    config = Config(data_dir=str(data), loader=loader, workers=workers, batch_size=64, augment=augment,  # type: ignore[arg-type]
                    prefetch=2 * workers)
    started = time.perf_counter()
    prepared = prepare(config, (3, size, size), (size, size))
    source = prepared.train
    pipeline = prepared.train_pipeline
    order = __import__("numpy").arange(len(source))[:batches * 64]
    ready = time.perf_counter()
    count = 0
    if pipeline is None:  # the in-memory path: every image decoded already, batches are slices
        for start in range(0, len(order), 64):
            count += len([source.image(k) for k in order[start:start + 64]])
    else:
        for images, _ in pipeline.batches(order, 64):
            count += len(images)
    seconds = time.perf_counter() - ready
    prepared.close()
    return {"images": count, "images_per_s": count / seconds, "setup_s": ready - started, "peak_rss_mib": peak_rss_mib()}


def torch_pass(data: Path, workers: int, batches: int) -> dict[str, float]:
    import torch
    from torchvision import datasets, transforms

    augment = transforms.Compose([transforms.RandomResizedCrop(224), transforms.RandomHorizontalFlip(),
                                  transforms.ColorJitter(0.4, 0.4, 0.4), transforms.ToTensor(),
                                  transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    dataset = datasets.ImageFolder(str(data / "train"), augment)  # (no lighting noise in torchvision)
    loader = torch.utils.data.DataLoader(dataset, batch_size=64, shuffle=False, num_workers=workers)
    started, count = time.perf_counter(), 0
    for images, _ in loader:
        count += len(images)
        if count >= batches * 64:
            break
    return {"images": count, "images_per_s": count / (time.perf_counter() - started), "peak_rss_mib": peak_rss_mib()}


def measure(args: argparse.Namespace) -> None:
    """In a fresh process: one measurement, printed as JSON."""
    data = Path(args.data)
    if args.measure == "torch":
        print(json.dumps(torch_pass(data, args.workers, args.batches)))
    else:
        kind, loader = args.measure.split(":")
        print(json.dumps(archspec_pass(data if kind == "folder" else data.with_name(data.name + "-rec"), loader,
                                       args.workers, args.batches, args.size)))


def run(args: argparse.Namespace, what: str, data: Path, batches: int, size: int = 224) -> dict[str, float]:
    command = [sys.executable, __file__, "--measure", what, "--data", str(data), "--workers", str(args.workers),
               "--batches", str(batches), "--size", str(size)]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if done.returncode:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"}  # type: ignore[dict-item]
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def train_share(args: argparse.Namespace) -> dict[str, object]:
    """One epoch of a narrow googlenet-imagenet from a RecordIO stream: images/s and the steps' share of the time."""
    folder = generate(Path(f"{args.folder}-train-{args.train_images}"), args.train_images, seed=1)
    packed = folder.with_name(folder.name + "-rec")
    if not (packed / "train.rec").exists():
        subprocess.run([sys.executable, "-m", "archspec", "pack", str(folder), "-o", str(packed)], check=True)
    out = folder.with_name(folder.name + "-run")
    subprocess.run(["rm", "-rf", str(out)], check=True)
    command = [sys.executable, "-m", "archspec", "train", "googlenet-imagenet", "--recipe",
               str(ROOT / "specs" / "recipes" / "googlenet-imagenet.yaml"), "--set", f"width={args.train_width}",
               "--set", "num_classes=100", "--data-dir", str(packed), "--epochs", "1", "--batch-size", "32",
               "--warmup-epochs", "0", "--workers", str(args.workers), "--out", str(out)]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if done.returncode:
        return {"error": done.stderr.strip().splitlines()[-1]}
    (row,) = json.loads((out / "metrics.json").read_text())
    return {"command": " ".join(command[1:]), "seconds": time.perf_counter() - started,
            "images_per_s": row["images_per_s"], "step_share": row["step_share"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=20000)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--batches", type=int, default=40, help="batches of 64 timed in the pipeline pass")
    p.add_argument("--memory-size", type=int, default=64, help="side the in-memory path decodes to (RSS pass)")
    p.add_argument("--folder", default="/tmp/archspec-stream-bench")
    p.add_argument("--train-images", type=int, default=2000, help="images of the training measurement (0: none)")
    p.add_argument("--train-width", type=float, default=0.25, help="googlenet-imagenet's width multiplier there")
    p.add_argument("--parts", default="pipeline,memory,training", help="which measurements to run (comma-separated)")
    p.add_argument("--out", help="write the results as JSON here")
    p.add_argument("--measure", help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    p.add_argument("--size", type=int, default=224, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.measure:
        return measure(args)
    results: dict[str, object] = {"images": args.images, "workers": args.workers, "cpus": os.cpu_count(),
                                  "load_average": os.getloadavg()}
    sets = {}
    for n in (args.images, 2 * args.images):
        folder = Path(f"{args.folder}-{n}")
        generate(folder, n)
        packed = folder.with_name(folder.name + "-rec")
        if not (packed / "train.rec").exists():
            subprocess.run([sys.executable, "-m", "archspec", "pack", str(folder), "-o", str(packed)], check=True)
        sets[n] = folder
    small, parts = sets[args.images], args.parts.split(",")
    if "pipeline" in parts:
        results["pipeline"] = pipeline(args, small)
    if "memory" in parts:
        results["memory"] = {str(n): {"recordio_stream": run(args, "recordio:stream", folder, args.batches),
                                      "folder_in_memory": run(args, "folder:memory", folder, args.batches,
                                                              args.memory_size)}
                             for n, folder in sets.items()}
    if args.train_images and "training" in parts:
        results["training"] = train_share(args)
    text = json.dumps(results, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


def pipeline(args: argparse.Namespace, small: Path) -> dict[str, object]:
    """Images/s of archspec's folder and RecordIO streams and of PyTorch's DataLoader, on the same images."""
    results: dict[str, object] = {"folder": run(args, "folder:stream", small, args.batches),
                                  "recordio": run(args, "recordio:stream", small, args.batches)}
    try:
        import torchvision  # noqa: F401

        results["torch"] = run(args, "torch", small, args.batches)
    except ImportError:
        results["torch"] = "torchvision is not installed"
    return results


if __name__ == "__main__":
    main()
