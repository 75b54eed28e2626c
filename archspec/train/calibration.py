"""INT8's calibration images: a spread of the training split of the data a command reads, as `evaluate` reads
them (resized to the network's input, or through the recipe's evaluation transforms)."""
from __future__ import annotations

from typing import Any

import numpy as onp
from mxnet import np

from ..gluon.precision import CALIBRATION_BATCH
from ..spec.diagnostics import InputError
from . import data
from .config import Config
from .stream import evaluation_data


def calibration_images(net: Any, config: Config, batches: int, source: str) -> Any:
    """The first `batches` batches' worth of images of the training split of `config`'s data (IDX files, class
    folders of images or RecordIO), taken evenly across it; `source` (the option and its value) says where
    they come from in an error."""
    split, pipeline = evaluation_data(config, "train", net.spec.input.shape)
    count = min(CALIBRATION_BATCH * batches, len(split))
    every = onp.linspace(0, len(split) - 1, count).round().astype(int)  # all classes: image folders are sorted
    ctx = net.collect_params().list_ctx()[0]
    if pipeline is not None:
        try:
            return np.array(pipeline.batch(every, 0)[0], ctx=ctx)
        finally:
            pipeline.close()
    if split.images.shape[-1] != net.spec.input.channels:  # the images say so, not the labels (split.source)
        raise InputError(f"{source}: the calibration images (its training images) have "
                         f"{split.images.shape[-1]} channel(s); {net.spec.name} takes {net.spec.input.channels}")
    return data.to_input(split.images[every], (net.spec.input.height, net.spec.input.width), ctx)
