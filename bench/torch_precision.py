"""The peer's side of bench/precision.py's training comparison: D2L's GoogLeNet in PyTorch (channels_last,
2 threads) trained on the same digits in float32 and under bfloat16 autocast, from the same initial weights and
data order for each seed, with what `archspec train` uses: Xavier-uniform weights and zero biases (MXNet's
`init.Xavier()`), Adam at lr 3e-4, batch 32, the images resized bilinearly to 96x96.
Run: python bench/torch_precision.py [--epochs 6] [--seeds 0 1 2] (needs torch, `pip install 'archspec[bench]'`)."""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from precision import SEEDS, digits_folder  # bench/, the script's own folder
from torch_googlenet import googlenet

from archspec.train.data import load_idx_folder


def tensors(folder: Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    data = load_idx_folder(folder, split)
    x = torch.tensor(data.images, dtype=torch.float32).permute(0, 3, 1, 2) / 255
    x = F.interpolate(x, size=(96, 96), mode="bilinear", align_corners=False)
    return x.contiguous(memory_format=torch.channels_last), torch.tensor(data.labels).long()


def train(train_set, test_set, seed: int, bf16: bool, epochs: int) -> list[float]:
    """Test accuracy after each epoch."""
    torch.manual_seed(seed)
    net = googlenet()
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)
    net = net.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-4)
    order = torch.Generator().manual_seed(seed)
    (x, y), (test_x, test_y), accuracies = train_set, test_set, []
    for _ in range(epochs):
        net.train()
        for batch in torch.randperm(len(y), generator=order).split(32):
            with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
                out = net(x[batch])
            loss = F.cross_entropy(out.float(), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        net.eval()
        with torch.no_grad():
            accuracies.append(float((net(test_x).argmax(1) == test_y).float().mean()))
    return accuracies


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    args = p.parse_args()
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        folder = digits_folder(Path(tmp))
        train_set, test_set = tensors(folder, "train"), tensors(folder, "test")
    print(f"PyTorch {torch.__version__}, D2L GoogLeNet on digits, {args.epochs} epochs: test accuracy after each")
    for seed in args.seeds:
        for bf16 in (False, True):
            start = time.perf_counter()
            accuracies = train(train_set, test_set, seed, bf16, args.epochs)
            print(f"  seed {seed} {'bf16 autocast' if bf16 else 'fp32':<13} "
                  + " ".join(f"{a:.1%}" for a in accuracies) + f"  ({time.perf_counter() - start:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
