"""The peer: D2L's GoogLeNet in PyTorch (the book's PyTorch edition, same layers and parameter count),
measured as bench/run.py measures the MXNet models. bench/run.py starts it in its own process when torch is
installed (`pip install 'archspec[bench]'`, a CPU build) and asks it for one measurement at a time, so that
the peer's measurements interleave with MXNet's: each line on standard input is a JSON request
{"variant": ..., "kind": "forward"|"train", "batch": N, "seconds": S}, each answer a JSON line
{"images_per_s": X} or {"error": "..."} (a variant this machine cannot run, e.g. torch.compile without a
compiler). The first line it writes describes the peer.

Variants, all with the same weights:
  nchw           eager, NCHW: PyTorch's default layout
  channels_last  eager, channels_last (NHWC) tensors and weights: oneDNN's preferred layout, PyTorch's fastest
                 eager setting on a CPU
  compile        channels_last under torch.compile (Inductor: fused, generated C++ kernels)
  bf16           channels_last under torch.autocast("cpu", torch.bfloat16): bf16 compute, fp32 weights
"""
from __future__ import annotations

import json
import os
import sys

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


class Peer:
    """The network in each variant, made on first use; a variant that fails to run is remembered as failed."""

    def __init__(self):
        torch.manual_seed(0)
        self.nchw = googlenet()
        self.channels_last = googlenet().to(memory_format=torch.channels_last)
        self.channels_last.load_state_dict(self.nchw.state_dict())
        self.compiled = None
        self.failed: dict[str, str] = {}

    def model(self, variant):
        if variant == "nchw":
            return self.nchw
        if variant == "compile":
            if self.compiled is None:
                self.compiled = torch.compile(self.channels_last)
            return self.compiled
        return self.channels_last

    def rate(self, variant, kind, batch, seconds):
        net = self.model(variant)
        layout = torch.contiguous_format if variant == "nchw" else torch.channels_last
        x = torch.rand(batch, 1, 96, 96).contiguous(memory_format=layout)
        y = torch.arange(batch) % 10
        optimizer = torch.optim.SGD(net.parameters(), lr=1e-9)
        autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=variant == "bf16")

        def step():
            if kind == "forward":
                with torch.inference_mode(), autocast:
                    net(x)
            else:
                optimizer.zero_grad()
                with autocast:
                    loss = F.cross_entropy(net(x), y)
                loss.backward()
                optimizer.step()

        return images_per_second(step, batch, seconds)

    def answer(self, request):
        variant = request["variant"]
        if variant in self.failed:
            return {"error": self.failed[variant]}
        try:
            return {"images_per_s": self.rate(variant, request["kind"], request["batch"], request["seconds"])}
        except Exception as e:  # e.g. torch.compile without a working C++ compiler: reported, not fatal
            self.failed[variant] = f"{type(e).__name__}: {str(e).strip().splitlines()[0][:300] if str(e).strip() else ''}"
            return {"error": self.failed[variant]}


def main():
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", os.cpu_count() or 1)))
    peer = Peer()
    print(json.dumps({"version": torch.__version__, "threads": torch.get_num_threads(),
                      "params": sum(p.numel() for p in peer.nchw.parameters()),
                      "mkldnn": torch.backends.mkldnn.is_available()}), flush=True)
    for line in sys.stdin:
        print(json.dumps(peer.answer(json.loads(line))), flush=True)


if __name__ == "__main__":
    main()
