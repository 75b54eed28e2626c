"""The peer: D2L's GoogLeNet in PyTorch (the book's PyTorch edition, same layers and parameter count),
measured as bench/run.py measures the MXNet models. Run by bench/run.py in its own process when torch is
installed (`pip install 'archspec[bench]'`, a CPU build); prints JSON."""
from __future__ import annotations

import argparse
import json
import os
import statistics

import torch
from torch import nn
from torch.nn import functional as F

from timing import images_per_second  # bench/, the script's own folder


class Inception(nn.Module):
    def __init__(self, in_channels, c1, c2, c3, c4):
        super().__init__()
        self.b1_1 = nn.Conv2d(in_channels, c1, kernel_size=1)
        self.b2_1 = nn.Conv2d(in_channels, c2[0], kernel_size=1)
        self.b2_2 = nn.Conv2d(c2[0], c2[1], kernel_size=3, padding=1)
        self.b3_1 = nn.Conv2d(in_channels, c3[0], kernel_size=1)
        self.b3_2 = nn.Conv2d(c3[0], c3[1], kernel_size=5, padding=2)
        self.b4_1 = nn.MaxPool2d(kernel_size=3, stride=1, padding=1)
        self.b4_2 = nn.Conv2d(in_channels, c4, kernel_size=1)

    def forward(self, x):
        b1 = F.relu(self.b1_1(x))
        b2 = F.relu(self.b2_2(F.relu(self.b2_1(x))))
        b3 = F.relu(self.b3_2(F.relu(self.b3_1(x))))
        b4 = F.relu(self.b4_2(self.b4_1(x)))
        return torch.cat((b1, b2, b3, b4), dim=1)


def googlenet(num_classes=10):
    pool = lambda: nn.MaxPool2d(kernel_size=3, stride=2, padding=1)  # noqa: E731
    return nn.Sequential(
        nn.Sequential(nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3), nn.ReLU(), pool()),
        nn.Sequential(nn.Conv2d(64, 64, kernel_size=1), nn.ReLU(), nn.Conv2d(64, 192, kernel_size=3, padding=1),
                      nn.ReLU(), pool()),
        nn.Sequential(Inception(192, 64, (96, 128), (16, 32), 32), Inception(256, 128, (128, 192), (32, 96), 64),
                      pool()),
        nn.Sequential(Inception(480, 192, (96, 208), (16, 48), 64), Inception(512, 160, (112, 224), (24, 64), 64),
                      Inception(512, 128, (128, 256), (24, 64), 64), Inception(512, 112, (144, 288), (32, 64), 64),
                      Inception(528, 256, (160, 320), (32, 128), 128), pool()),
        nn.Sequential(Inception(832, 256, (160, 320), (32, 128), 128), Inception(832, 384, (192, 384), (48, 128), 128),
                      nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten()),
        nn.Linear(1024, num_classes))


def rate(net, kind, batch, seconds, optimizer):
    x = torch.rand(batch, 1, 96, 96)
    y = torch.arange(batch) % 10

    def step():
        if kind == "forward":
            with torch.inference_mode():
                net(x)
        else:
            optimizer.zero_grad()
            F.cross_entropy(net(x), y).backward()
            optimizer.step()

    return images_per_second(step, batch, seconds)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--seconds", type=float, default=1.0)
    p.add_argument("--smoke", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", os.cpu_count() or 1)))
    net = googlenet()
    optimizer = torch.optim.SGD(net.parameters(), lr=1e-9)
    cases = [("forward", 1), ("train", 2)] if args.smoke else [("forward", 1), ("forward", 32), ("forward", 128),
                                                                 ("train", 64)]
    raw = {f"{k}@{b}": [] for k, b in cases}
    for _ in range(args.repeats):
        for kind, batch in cases:
            raw[f"{kind}@{batch}"].append(rate(net, kind, batch, args.seconds, optimizer))
    print(json.dumps({"version": torch.__version__, "threads": torch.get_num_threads(),
                      "params": sum(p.numel() for p in net.parameters()),
                      "images_per_s": {c: {"median": statistics.median(v), "min": min(v), "max": max(v), "n": len(v)}
                                       for c, v in raw.items()}}))


if __name__ == "__main__":
    main()
