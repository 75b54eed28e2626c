"""The D2L book's workflow with a spec in place of the chapter's hand-written class: `d2l.Trainer.fit` trains it,
and `layer_summary` prints the book's table by stage name."""
import random

import mxnet as mx
import numpy as onp
from d2l import mxnet as d2l
from mxnet import np

from archspec.train.d2l import Classifier

TINY = {"name": "tiny", "input": {"channels": 1, "height": 8, "width": 8},
        "stages": {"body": [{"conv": {"channels": 4, "kernel": 3, "activation": "relu"}}, "flatten"],
                   "head": [{"dense": 3}]}}


class Blobs(d2l.DataModule):
    """Three classes of 8x8 images, each a different brightness plus noise."""

    def __init__(self, n=96, batch_size=16):
        super().__init__()
        self.save_hyperparameters()
        rng = onp.random.default_rng(0)
        self.y = rng.integers(0, 3, n).astype("int32")
        self.X = (rng.normal(size=(n, 1, 8, 8)) + 2 * self.y[:, None, None, None]).astype("float32")

    def get_dataloader(self, train):
        return self.get_tensorloader((np.array(self.X), np.array(self.y)), train)


def test_layer_summary_prints_the_books_table_by_stage_name(capsys):
    Classifier("googlenet").layer_summary((1, 1, 96, 96))
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["b1", "b2", "b3", "b4", "b5", "head"]
    assert lines[0].endswith("(1, 64, 24, 24)") and lines[2].endswith("(1, 480, 6, 6)")
    assert lines[-1].endswith("(1, 10)")


def test_d2l_trainer_fits_a_spec_built_classifier(capsys):
    mx.random.seed(0)  # the initial weights
    onp.random.seed(0)  # the data loader's shuffling
    random.seed(0)
    data, model = Blobs(), Classifier(TINY, lr=0.01)
    model.board.display = False  # the book's live plot needs a notebook
    X, y = np.array(data.X), np.array(data.y)
    before = float(model.loss(model(X), y))
    trainer = d2l.Trainer(max_epochs=1)
    trainer.fit(model, data)
    assert trainer.train_batch_idx == 96 // 16  # one epoch, every batch
    assert float(model.loss(model(X), y)) < 0.8 * before  # it learned (1.69 -> 0.82 here)


def test_d2l_fine_tuning_starts_from_weights_keeps_a_frozen_stage_and_speeds_up_another(tmp_path):
    mx.random.seed(1)
    onp.random.seed(1)
    random.seed(1)
    pretrained = Classifier(TINY)
    pretrained.net.save_parameters(str(tmp_path / "tiny.params"))
    model = Classifier(TINY, lr=0.01, init=tmp_path / "tiny.params", freeze="body", lr_mult="head=10")
    weight = model.net.body[0].weight.data().asnumpy()
    assert onp.array_equal(weight, pretrained.net.body[0].weight.data().asnumpy())  # started from the file
    assert model.net.head[0].weight.lr_mult == 10
    model.board.display = False
    d2l.Trainer(max_epochs=1).fit(model, Blobs())
    assert onp.array_equal(model.net.body[0].weight.data().asnumpy(), weight)  # frozen
    assert not onp.array_equal(model.net.head[0].weight.data().asnumpy(),
                               pretrained.net.head[0].weight.data().asnumpy())
