"""What a training step optimizes beyond the loss and the learning rate: a learning-rate schedule (MXNet's
`lr_scheduler` classes, with linear warm-up), label smoothing, and weight decay kept off biases and batch norm.

The schedule is a function of the update count only: MXNet's optimizer evaluates it at its `num_update`, which a
checkpoint's optimizer states carry, so a resumed run follows the same curve."""
from __future__ import annotations

from typing import Any

from mxnet import gluon, lr_scheduler

from .config import Config


def scheduler(config: Config, steps_per_epoch: int) -> Any:
    """The `mx.lr_scheduler.LRScheduler` of `config.schedule`, in updates (epochs x `steps_per_epoch`); None for a
    constant rate without warm-up."""
    warmup = round(config.warmup_epochs * steps_per_epoch)
    if config.schedule == "constant" and not warmup:
        return None
    total = config.epochs * steps_per_epoch
    common = {"base_lr": config.lr, "warmup_steps": warmup, "warmup_begin_lr": config.warmup_lr}
    epochs = [e * steps_per_epoch for e in config.lr_epochs]
    if config.schedule == "step":  # every lr_epochs[0] epochs
        return lr_scheduler.FactorScheduler(epochs[0], config.lr_factor, stop_factor_lr=0.0, **common)
    if config.schedule == "multistep":
        return lr_scheduler.MultiFactorScheduler(epochs, config.lr_factor, **common)
    if config.schedule == "cosine":
        return lr_scheduler.CosineScheduler(max(total, warmup + 1), final_lr=config.final_lr, **common)
    if config.schedule == "poly":
        return lr_scheduler.PolyScheduler(max(total, warmup + 1), pwr=config.power, final_lr=config.final_lr,
                                          **common)
    # constant after a warm-up: a factor schedule that never steps
    return lr_scheduler.FactorScheduler(max(total, 1) + 1, 1.0, **common)


def no_decay_on_biases_and_norms(net: Any) -> int:
    """Set `wd_mult = 0` on every bias and batch-norm scale and shift (the "no bias decay" trick of Goyal et al.,
    2017 and He et al., 2019); returns how many parameters it changed."""
    count = 0
    for name, param in net.collect_params().items():
        if name.endswith(("bias", "gamma", "beta")):
            param.wd_mult = 0.0
            count += 1
    return count


class SmoothedCrossEntropy(gluon.loss.Loss):
    """Softmax cross-entropy against labels smoothed by `epsilon` (Szegedy et al., 2016): (1 - epsilon) of the
    weight on the label, epsilon spread evenly over all classes. Sparse integer labels, as
    `SoftmaxCrossEntropyLoss`; epsilon 0 gives the same values."""

    def __init__(self, epsilon: float, **kwargs: Any):
        super().__init__(None, 0, **kwargs)
        self.epsilon = epsilon

    def hybrid_forward(self, F: Any, pred: Any, label: Any) -> Any:
        log_p = F.npx.log_softmax(pred, axis=-1)
        picked = F.npx.pick(log_p, label, axis=-1)
        return -((1 - self.epsilon) * picked + self.epsilon * log_p.mean(axis=-1))


def loss(config: Config) -> Any:
    """The loss a run trains with: softmax cross-entropy, label-smoothed when the recipe says so."""
    if config.label_smoothing:
        return SmoothedCrossEntropy(config.label_smoothing)
    return gluon.loss.SoftmaxCrossEntropyLoss()
