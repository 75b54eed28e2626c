"""GoogLeNet written by hand, the two ways a Gluon user would: the seed's own code (D2L, "Multi-Branch
Networks", MXNet edition: imperative `nn.Block`s) and the same layers as `HybridBlock`s. The benchmark
compares archspec's built network with both; the tests use the seed's as the reference network."""
from mxnet import init, np
from mxnet.gluon import nn


def _branches(block, c1, c2, c3, c4):
    # c1--c4 are the number of output channels for each branch
    block.b1_1 = nn.Conv2D(c1, kernel_size=1, activation='relu')
    block.b2_1 = nn.Conv2D(c2[0], kernel_size=1, activation='relu')
    block.b2_2 = nn.Conv2D(c2[1], kernel_size=3, padding=1, activation='relu')
    block.b3_1 = nn.Conv2D(c3[0], kernel_size=1, activation='relu')
    block.b3_2 = nn.Conv2D(c3[1], kernel_size=5, padding=2, activation='relu')
    block.b4_1 = nn.MaxPool2D(pool_size=3, strides=1, padding=1)
    block.b4_2 = nn.Conv2D(c4, kernel_size=1, activation='relu')


class Inception(nn.Block):
    """The seed's Inception block, verbatim in behaviour."""

    def __init__(self, c1, c2, c3, c4, **kwargs):
        super().__init__(**kwargs)
        _branches(self, c1, c2, c3, c4)

    def forward(self, x):
        b1 = self.b1_1(x)
        b2 = self.b2_2(self.b2_1(x))
        b3 = self.b3_2(self.b3_1(x))
        b4 = self.b4_2(self.b4_1(x))
        return np.concatenate((b1, b2, b3, b4), axis=1)


class HybridInception(nn.HybridBlock):
    """The same block as a HybridBlock: `F.np.concatenate`, so `hybridize()` can trace it."""

    def __init__(self, c1, c2, c3, c4, **kwargs):
        super().__init__(**kwargs)
        _branches(self, c1, c2, c3, c4)

    def hybrid_forward(self, F, x):
        b1 = self.b1_1(x)
        b2 = self.b2_2(self.b2_1(x))
        b3 = self.b3_2(self.b3_1(x))
        b4 = self.b4_2(self.b4_1(x))
        return F.np.concatenate((b1, b2, b3, b4), axis=1)


def googlenet(num_classes=10, hybrid=False):
    """D2L's GoogLeNet: b1..b5 then Dense(num_classes), Xavier-initialised. `hybrid=True`: HybridBlocks
    throughout (call `hybridize()` yourself); otherwise the seed's imperative network."""
    Seq, Inc = (nn.HybridSequential, HybridInception) if hybrid else (nn.Sequential, Inception)
    b1 = Seq()
    b1.add(nn.Conv2D(64, kernel_size=7, strides=2, padding=3, activation='relu'),
           nn.MaxPool2D(pool_size=3, strides=2, padding=1))
    b2 = Seq()
    b2.add(nn.Conv2D(64, kernel_size=1, activation='relu'),
           nn.Conv2D(192, kernel_size=3, padding=1, activation='relu'),
           nn.MaxPool2D(pool_size=3, strides=2, padding=1))
    b3 = Seq()
    b3.add(Inc(64, (96, 128), (16, 32), 32),
           Inc(128, (128, 192), (32, 96), 64),
           nn.MaxPool2D(pool_size=3, strides=2, padding=1))
    b4 = Seq()
    b4.add(Inc(192, (96, 208), (16, 48), 64),
           Inc(160, (112, 224), (24, 64), 64),
           Inc(128, (128, 256), (24, 64), 64),
           Inc(112, (144, 288), (32, 64), 64),
           Inc(256, (160, 320), (32, 128), 128),
           nn.MaxPool2D(pool_size=3, strides=2, padding=1))
    b5 = Seq()
    b5.add(Inc(256, (160, 320), (32, 128), 128),
           Inc(384, (192, 384), (48, 128), 128),
           nn.GlobalAvgPool2D())
    net = Seq()
    net.add(b1, b2, b3, b4, b5, nn.Dense(num_classes))
    net.initialize(init.Xavier())
    return net
