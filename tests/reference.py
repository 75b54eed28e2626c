"""Reference networks written by hand from the D2L book, independent of archspec's code.

`googlenet()` is the seed's GoogLeNet (D2L, "Multi-Branch Networks"), an imperative `nn.Block`
(in bench/googlenet_reference.py, which the benchmark uses too).
"""
from googlenet_reference import googlenet  # noqa: F401  the seed's code, in bench/ (conftest puts it on the path)
from mxnet import init, np, npx
from mxnet.gluon import nn

npx.set_np()


def materialise(net, shape):
    """Run one batch so that deferred-initialised parameters get their shapes."""
    net(np.zeros(shape))
    return net


def copy_params(source, target):
    """Copy parameters in creation order; both networks must have the same shapes in the same order."""
    src, dst = list(source.collect_params().values()), list(target.collect_params().values())
    assert [p.shape for p in src] == [p.shape for p in dst]
    for s, d in zip(src, dst):
        d.set_data(s.data())


# ---------------------------------------------------------------------------------------------
# The networks of the D2L chapters around GoogLeNet, as the book writes them (MXNet edition).

def alexnet(num_classes=10):
    net = nn.Sequential()
    net.add(nn.Conv2D(96, kernel_size=11, strides=4, activation='relu'),
            nn.MaxPool2D(pool_size=3, strides=2),
            nn.Conv2D(256, kernel_size=5, padding=2, activation='relu'),
            nn.MaxPool2D(pool_size=3, strides=2),
            nn.Conv2D(384, kernel_size=3, padding=1, activation='relu'),
            nn.Conv2D(384, kernel_size=3, padding=1, activation='relu'),
            nn.Conv2D(256, kernel_size=3, padding=1, activation='relu'),
            nn.MaxPool2D(pool_size=3, strides=2),
            nn.Dense(4096, activation='relu'), nn.Dropout(0.5),
            nn.Dense(4096, activation='relu'), nn.Dropout(0.5),
            nn.Dense(num_classes))
    net.initialize(init.Xavier())
    return net


def vgg(conv_arch=((1, 64), (1, 128), (2, 256), (2, 512), (2, 512)), num_classes=10):
    def vgg_block(num_convs, num_channels):
        blk = nn.Sequential()
        for _ in range(num_convs):
            blk.add(nn.Conv2D(num_channels, kernel_size=3, padding=1, activation='relu'))
        blk.add(nn.MaxPool2D(pool_size=2, strides=2))
        return blk

    net = nn.Sequential()
    for (num_convs, num_channels) in conv_arch:
        net.add(vgg_block(num_convs, num_channels))
    net.add(nn.Dense(4096, activation='relu'), nn.Dropout(0.5),
            nn.Dense(4096, activation='relu'), nn.Dropout(0.5),
            nn.Dense(num_classes))
    net.initialize(init.Xavier())
    return net


def nin(num_classes=10):
    def nin_block(num_channels, kernel_size, strides, padding):
        blk = nn.Sequential()
        blk.add(nn.Conv2D(num_channels, kernel_size, strides, padding, activation='relu'),
                nn.Conv2D(num_channels, kernel_size=1, activation='relu'),
                nn.Conv2D(num_channels, kernel_size=1, activation='relu'))
        return blk

    net = nn.Sequential()
    net.add(nin_block(96, kernel_size=11, strides=4, padding=0),
            nn.MaxPool2D(pool_size=3, strides=2),
            nin_block(256, kernel_size=5, strides=1, padding=2),
            nn.MaxPool2D(pool_size=3, strides=2),
            nin_block(384, kernel_size=3, strides=1, padding=1),
            nn.MaxPool2D(pool_size=3, strides=2),
            nn.Dropout(0.5),
            nin_block(num_classes, kernel_size=3, strides=1, padding=1),
            nn.GlobalAvgPool2D(),
            nn.Flatten())
    net.initialize(init.Xavier())
    return net


def densenet(num_classes=10):
    def conv_block(num_channels):
        blk = nn.Sequential()
        blk.add(nn.BatchNorm(), nn.Activation('relu'), nn.Conv2D(num_channels, kernel_size=3, padding=1))
        return blk

    class DenseBlock(nn.Block):
        def __init__(self, num_convs, num_channels):
            super().__init__()
            self.net = nn.Sequential()
            for _ in range(num_convs):
                self.net.add(conv_block(num_channels))

        def forward(self, X):
            for blk in self.net:
                Y = blk(X)
                X = np.concatenate((X, Y), axis=1)
            return X

    def transition_block(num_channels):
        blk = nn.Sequential()
        blk.add(nn.BatchNorm(), nn.Activation('relu'), nn.Conv2D(num_channels, kernel_size=1),
                nn.AvgPool2D(pool_size=2, strides=2))
        return blk

    net = nn.Sequential()
    net.add(nn.Conv2D(64, kernel_size=7, strides=2, padding=3), nn.BatchNorm(), nn.Activation('relu'),
            nn.MaxPool2D(pool_size=3, strides=2, padding=1))
    num_channels, growth_rate = 64, 32
    num_convs_in_dense_blocks = [4, 4, 4, 4]
    for i, num_convs in enumerate(num_convs_in_dense_blocks):
        net.add(DenseBlock(num_convs, growth_rate))
        num_channels += num_convs * growth_rate
        if i != len(num_convs_in_dense_blocks) - 1:
            num_channels //= 2
            net.add(transition_block(num_channels))
    net.add(nn.BatchNorm(), nn.Activation('relu'), nn.GlobalAvgPool2D(), nn.Dense(num_classes))
    net.initialize(init.Xavier())
    return net


# ---------------------------------------------------------------------------------------------
# Modern variants, written from their papers' reference code (torchvision's mobilenet_v2, D2L's ResNeXtBlock).

class _InvertedResidual(nn.Block):
    """torchvision's InvertedResidual: expand (unless t == 1), depthwise, linear project; add when it can."""

    def __init__(self, inp, oup, stride, t):
        super().__init__()
        self.use_res = stride == 1 and inp == oup
        self.body = nn.Sequential()
        hidden = inp * t
        if t != 1:
            self.body.add(nn.Conv2D(hidden, 1, use_bias=False), nn.BatchNorm(), _ReLU6())
        self.body.add(nn.Conv2D(hidden, 3, strides=stride, padding=1, groups=hidden, use_bias=False),
                      nn.BatchNorm(), _ReLU6(), nn.Conv2D(oup, 1, use_bias=False), nn.BatchNorm())

    def forward(self, x):
        return x + self.body(x) if self.use_res else self.body(x)


class _ReLU6(nn.Block):
    def forward(self, x):
        return np.minimum(npx.relu(x), 6)


def mobilenet_v2(num_classes=1000):
    """torchvision.models.mobilenet_v2 at width 1 (the paper's Table 2), in Gluon."""
    net = nn.Sequential()
    net.add(nn.Conv2D(32, 3, strides=2, padding=1, use_bias=False), nn.BatchNorm(), _ReLU6())
    inp = 32
    for t, c, n, s in [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                       (6, 320, 1, 1)]:
        for i in range(n):
            net.add(_InvertedResidual(inp, c, s if i == 0 else 1, t))
            inp = c
    net.add(nn.Conv2D(1280, 1, use_bias=False), nn.BatchNorm(), _ReLU6(), nn.GlobalAvgPool2D(), nn.Dropout(0.2),
            nn.Dense(num_classes))
    return net


class ResNeXtBlock(nn.Block):
    """D2L's ResNeXtBlock (MXNet edition), as the book writes it."""

    def __init__(self, num_channels, groups, bot_mul, use_1x1conv=False, strides=1):
        super().__init__()
        bot_channels = int(round(num_channels * bot_mul))
        self.conv1 = nn.Conv2D(bot_channels, kernel_size=1, padding=0, strides=1)
        self.conv2 = nn.Conv2D(bot_channels, kernel_size=3, padding=1, strides=strides,
                               groups=bot_channels // groups)
        self.conv3 = nn.Conv2D(num_channels, kernel_size=1, padding=0, strides=1)
        self.bn1, self.bn2, self.bn3 = nn.BatchNorm(), nn.BatchNorm(), nn.BatchNorm()
        if use_1x1conv:
            self.conv4 = nn.Conv2D(num_channels, kernel_size=1, strides=strides)
            self.bn4 = nn.BatchNorm()
        else:
            self.conv4 = None

    def forward(self, X):
        Y = npx.relu(self.bn1(self.conv1(X)))
        Y = npx.relu(self.bn2(self.conv2(Y)))
        Y = self.bn3(self.conv3(Y))
        if self.conv4:
            X = self.bn4(self.conv4(X))
        return npx.relu(Y + X)

    def ordered_params(self):
        """In the order a spec's block creates them: each conv followed by its batch norm."""
        parts = [self.conv1, self.bn1, self.conv2, self.bn2, self.conv3, self.bn3]
        parts += [self.conv4, self.bn4] if self.conv4 else []
        return [p for part in parts for p in part.collect_params().values()]


def resnext(num_classes=10, groups=16):
    """D2L's ResNet stem and a ResNet-18 body of ResNeXtBlocks (a projection where the shape changes)."""
    net = nn.Sequential()
    net.add(nn.Conv2D(64, kernel_size=7, strides=2, padding=3), nn.BatchNorm(), nn.Activation('relu'),
            nn.MaxPool2D(pool_size=3, strides=2, padding=1))
    inp = 64
    for channels, first_stride in [(64, 1), (128, 2), (256, 2), (512, 2)]:
        for i in range(2):
            stride = first_stride if i == 0 else 1
            net.add(ResNeXtBlock(channels, groups, 1, use_1x1conv=inp != channels or stride != 1, strides=stride))
            inp = channels
    net.add(nn.GlobalAvgPool2D(), nn.Dense(num_classes))
    return net


# ---------------------------------------------------------------------------------------------
# "Designing Convolution Network Architectures" (D2L, MXNet edition): AnyNet and RegNetX32, as the chapter writes
# them (a d2l.Classifier there; its `net` here), over the book's own d2l.ResNeXtBlock.

class AnyNet(nn.Block):
    def stem(self, num_channels):
        net = nn.Sequential()
        net.add(nn.Conv2D(num_channels, kernel_size=3, padding=1, strides=2),
                nn.BatchNorm(), nn.Activation('relu'))
        return net

    def stage(self, depth, num_channels, groups, bot_mul):
        from d2l import mxnet as d2l

        net = nn.Sequential()
        for i in range(depth):
            if i == 0:
                net.add(d2l.ResNeXtBlock(num_channels, groups, bot_mul, use_1x1conv=True, strides=2))
            else:
                net.add(d2l.ResNeXtBlock(num_channels, groups, bot_mul))
        return net

    def __init__(self, arch, stem_channels, lr=0.1, num_classes=10):
        super(AnyNet, self).__init__()
        self.net = nn.Sequential()
        self.net.add(self.stem(stem_channels))
        for i, s in enumerate(arch):
            self.net.add(self.stage(*s))
        self.net.add(nn.GlobalAvgPool2D(), nn.Dense(num_classes))
        self.net.initialize(init.Xavier())

    def forward(self, X):
        return self.net(X)


class RegNetX32(AnyNet):
    def __init__(self, lr=0.1, num_classes=10):
        stem_channels, groups, bot_mul = 32, 16, 1
        depths, channels = (4, 6), (32, 80)
        super().__init__(
            ((depths[0], channels[0], groups, bot_mul),
             (depths[1], channels[1], groups, bot_mul)),
            stem_channels, lr, num_classes)


def anynet_params(model):
    """An AnyNet's parameters in the order a spec creates them: each ResNeXtBlock's convolutions each followed by
    its batch norm (the book's block creates conv1, conv2, conv3, then bn1, bn2, bn3)."""
    from d2l import mxnet as d2l

    out = []
    for layer in model.net:
        blocks = [b for b in layer if isinstance(b, d2l.ResNeXtBlock)] if isinstance(layer, nn.Sequential) else []
        if not blocks:
            out += list(layer.collect_params().values())
        for b in blocks:
            parts = [b.conv1, b.bn1, b.conv2, b.bn2, b.conv3, b.bn3] + ([b.conv4, b.bn4] if b.conv4 else [])
            out += [p for part in parts for p in part.collect_params().values()]
    return out


# ---------------------------------------------------------------------------------------------
# U-Net (Ronneberger, Fischer & Brox, 2015) as the paper's Section 2 describes it, in plain Gluon.

class UNet(nn.Block):
    """Contracting path: per level two unpadded 3x3 convolutions with ReLU, then a 2x2 max pool / 2, the
    channels doubling from `width`; expansive path: a 2x2 up-convolution halving the channels, concatenated with
    the contracting path's feature map at that level cropped to its centre, two 3x3 convolutions with ReLU;
    a final 1x1 convolution to `classes`."""

    def __init__(self, classes=2, width=64, levels=4, in_channels=1):
        super().__init__()
        sizes = [width * 2 ** i for i in range(levels + 1)]  # 64, 128, 256, 512, 1024
        self.down = nn.Sequential()
        for before, channels in zip([in_channels] + sizes, sizes):
            self.down.add(self._double_conv(before, channels))
        self.expand = nn.Sequential()  # per level, deepest first: the up-convolution, then the two convolutions
        for channels in reversed(sizes[:-1]):
            level = nn.Sequential()
            level.add(nn.Conv2DTranspose(channels, 2, strides=2, in_channels=2 * channels),
                      self._double_conv(2 * channels, channels))
            self.expand.add(level)
        self.out = nn.Conv2D(classes, 1, in_channels=width)

    @staticmethod
    def _double_conv(before, channels):
        block = nn.Sequential()
        block.add(nn.Conv2D(channels, 3, activation="relu", in_channels=before),
                  nn.Conv2D(channels, 3, activation="relu", in_channels=channels))
        return block

    def forward(self, x):
        skips = []
        for i, block in enumerate(self.down):
            x = block(npx.pooling(x, kernel=(2, 2), stride=(2, 2), pool_type="max") if i else x)
            skips.append(x)
        for (up, decode), skip in zip(self.expand, reversed(skips[:-1])):
            x = up(x)
            top, left = (skip.shape[2] - x.shape[2]) // 2, (skip.shape[3] - x.shape[3]) // 2
            skip = skip[:, :, top:top + x.shape[2], left:left + x.shape[3]]  # crop and copy
            x = decode(np.concatenate([skip, x], axis=1))
        return self.out(x)
