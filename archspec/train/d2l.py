"""The D2L book's workflow with a spec in place of a hand-written class:

    from d2l import mxnet as d2l
    from archspec.train.d2l import Classifier

    model = Classifier("googlenet", lr=0.1)              # or a spec file, with overrides as keywords
    model.layer_summary((1, 1, 96, 96))                  # b1 output shape: (1, 64, 24, 24) ... as the book prints
    trainer = d2l.Trainer(max_epochs=10, num_gpus=1)
    trainer.fit(model, d2l.FashionMNIST(batch_size=128, resize=(96, 96)))

The book's fine-tuning ("Fine-Tuning": a pretrained network, a new output layer learning 10 times faster):

    model = Classifier("resnet18-v2", lr=5e-5, init="resnet18_v2.params", lr_mult="head=10", num_classes=2)

Needs the `d2l` extra (`pip install 'archspec[d2l]'`), which pins jupyter, pandas and matplotlib: it is imported
here only, never by the rest of archspec.
"""
from __future__ import annotations

from typing import Any

from d2l import mxnet as d2l
from mxnet import np

from ..gluon.build import build_model
from ..gluon.tuning import freeze as freeze_stages
from ..gluon.tuning import lr_mult as set_lr_mult
from .config import factors


class Classifier(d2l.Classifier):
    """A `d2l.Classifier` whose network is built from a spec: `d2l.Trainer.fit` trains it as the book's own."""

    def __init__(self, spec: Any, lr: float = 0.1, init: Any = None, freeze: Any = None, lr_mult: Any = None,
                 strict: bool = False, **overrides: Any):
        """`init`, `freeze`, `lr_mult` and `strict` as `archspec train`'s options (`gluon.transfer`,
        `gluon.tuning`): start from learned weights, leave stages untrained, let some learn faster."""
        super().__init__()
        self.lr = lr
        self.net = build_model(spec, overrides or None, init=init, strict=strict)
        freeze_stages(self.net, freeze)
        set_lr_mult(self.net, factors(lr_mult, lr))

    def layer_summary(self, X_shape: tuple[int, ...]) -> None:
        """The book's table, by stage name: `b1 output shape:	(1, 64, 24, 24)`."""
        X = np.random.normal(size=X_shape)
        for name, stage in zip(self.net.stage_names, self.net):
            X = stage(X)
            print(name, "output shape:\t", X.shape)
