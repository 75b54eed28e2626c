"""Augmentation and normalisation declared by name, as the D2L book's image-augmentation chapter and GluonCV's
ImageNet presets use them: `random_resized_crop`, `flip`, `color_jitter`, `lighting`, `resize`, `center_crop`,
`random_crop`, `normalize`. A recipe lists them in order (`train.augment` for training, `train.evaluate` for
testing, evaluation and prediction):

    augment:
      - random_resized_crop: {size: 224}
      - flip
      - normalize: {mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225]}

Each image is transformed on its own with a generator seeded by (seed, epoch, example number), so the random
choices do not depend on the batch, the worker process or the moment a run was resumed: a resumed run sees the
same pixels an uninterrupted one does. numpy and Pillow only (no MXNet): worker processes run them, and
`archspec validate` checks a recipe without MXNet.
"""
from __future__ import annotations

import math
from typing import Annotated, Any, ClassVar, Optional, Union

import numpy as onp
from pydantic import BaseModel, ConfigDict, Field, model_serializer, model_validator

from ..spec.diagnostics import InputError

Side = Annotated[int, Field(ge=1, le=4096)]  # pixels, as the spec's input and --resize allow
Size = Union[Side, tuple[Side, Side]]  # one number: the shorter side (resize) or a square (crops); or [height, width]

# AlexNet's PCA lighting noise: the eigenvalues and eigenvectors of ImageNet's RGB covariance (on 0..255),
# as GluonCV's `transforms.image.random_lighting` and torchvision's reference scripts use them.
_EIGVAL = onp.array([55.46, 4.794, 1.148], onp.float32)
_EIGVEC = onp.array([[-0.5675, 0.7192, 0.4009], [-0.5808, -0.0045, -0.8140], [-0.5836, -0.6948, 0.4203]],
                    onp.float32)


class TransformError(InputError):
    """A transform that cannot apply to an image (a crop larger than it); `index` is its place in the list."""

    def __init__(self, index: int, name: str, message: str, field: str = ""):
        self.index, self.name, self.field = index, name, field  # `field`: augment or evaluate, set by who ran it
        super().__init__(message)

    def __reduce__(self) -> Any:  # raised in a worker process, re-raised in the parent
        return (TransformError, (self.index, self.name, str(self), self.field))

    def about(self, image: str, field: str) -> "TransformError":
        """The same error naming the image it met and the list (augment, evaluate) it is in."""
        return TransformError(self.index, self.name, f"{self}: {image}", field)


class _Transform(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    random: ClassVar[bool] = False  # whether it draws from the generator


def _pair(size: Size) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


class Resize(_Transform):
    """Resize (bilinear): a number sets the shorter side (the aspect kept), [height, width] both."""

    size: Size = Field(description="shorter side, or [height, width]")

    def out(self, height: int, width: int) -> tuple[int, int]:
        if not isinstance(self.size, int):
            return self.size
        short = min(height, width)
        return (max(1, round(height * self.size / short)), max(1, round(width * self.size / short)))


class CenterCrop(_Transform):
    """The centre [height, width] of the image (torchvision's and Gluon's CenterCrop)."""

    size: Size = Field(description="side of a square crop, or [height, width]")


class RandomCrop(_Transform):
    """A random [height, width] window, after `padding` zero pixels on each side (D2L's CIFAR-10 recipe)."""

    random: ClassVar[bool] = True
    size: Size = Field(description="side of a square crop, or [height, width]")
    padding: int = Field(0, ge=0, le=1024, description="zero pixels added on each side first")


class RandomResizedCrop(_Transform):
    """A random window of `scale` of the area and `ratio` aspect, resized to `size` (Inception's crop,
    torchvision's RandomResizedCrop: ten tries, then the centre crop)."""

    random: ClassVar[bool] = True
    size: Size = Field(description="output side, or [height, width]")
    scale: tuple[float, float] = Field((0.08, 1.0), description="range of the window's area, as a fraction")
    ratio: tuple[float, float] = Field((3 / 4, 4 / 3), description="range of the window's width / height")

    @model_validator(mode="after")
    def _ranges(self) -> "RandomResizedCrop":
        if not (0 < self.scale[0] <= self.scale[1] <= 1):
            raise ValueError(f"scale: expected 0 < low <= high <= 1, got {list(self.scale)}")
        if not (0 < self.ratio[0] <= self.ratio[1]):
            raise ValueError(f"ratio: expected 0 < low <= high, got {list(self.ratio)}")
        return self


class Flip(_Transform):
    """Mirror left to right with `probability` (Gluon's RandomFlipLeftRight)."""

    random: ClassVar[bool] = True
    probability: float = Field(0.5, ge=0, le=1)


class ColorJitter(_Transform):
    """Brightness, contrast and saturation each scaled by 1 + U(-x, x), in a random order (GluonCV's
    RandomColorJitter without hue)."""

    random: ClassVar[bool] = True
    brightness: float = Field(0.0, ge=0, le=1)
    contrast: float = Field(0.0, ge=0, le=1)
    saturation: float = Field(0.0, ge=0, le=1)


class Lighting(_Transform):
    """AlexNet's PCA lighting noise: ImageNet's RGB eigenvectors weighted by N(0, alpha) x eigenvalues (on a
    grayscale image, their mean)."""

    random: ClassVar[bool] = True
    alpha: float = Field(0.1, ge=0, le=10)


class Normalize(_Transform):
    """(x - mean) / std per channel, x in [0, 1] (Gluon's Normalize after ToTensor)."""

    mean: tuple[float, ...] = Field(min_length=1, max_length=4)
    std: tuple[float, ...] = Field(min_length=1, max_length=4)

    @model_validator(mode="after")
    def _positive(self) -> "Normalize":
        if len(self.mean) != len(self.std):
            raise ValueError(f"mean has {len(self.mean)} value(s), std {len(self.std)}")
        if min(self.std) <= 0:
            raise ValueError("std: expected positive values")
        return self


#: every transform a recipe may name
TRANSFORMS: dict[str, type[_Transform]] = {
    "resize": Resize, "center_crop": CenterCrop, "random_crop": RandomCrop,
    "random_resized_crop": RandomResizedCrop, "flip": Flip, "color_jitter": ColorJitter, "lighting": Lighting,
    "normalize": Normalize}


class Step(BaseModel):
    """One entry of a transform list: `- flip`, or `- center_crop: {size: 224}` (one name a mapping)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    resize: Optional[Resize] = None
    center_crop: Optional[CenterCrop] = None
    random_crop: Optional[RandomCrop] = None
    random_resized_crop: Optional[RandomResizedCrop] = None
    flip: Optional[Flip] = None
    color_jitter: Optional[ColorJitter] = None
    lighting: Optional[Lighting] = None
    normalize: Optional[Normalize] = None

    @model_validator(mode="before")
    @classmethod
    def _named(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {value: {}}
        if isinstance(value, dict):
            return {k: ({} if v is None else v) for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _one(self) -> "Step":
        if len(self.model_fields_set) != 1:
            raise ValueError(f"one transform an entry, got {len(self.model_fields_set)}: "
                             f"{', '.join(sorted(self.model_fields_set)) or 'none'}")
        return self

    @model_serializer
    def _as_written(self) -> dict[str, Any]:  # `{flip: {probability: 0.5}}`, as a recipe writes it
        return {self.name: self.transform.model_dump()}

    @property
    def name(self) -> str:
        return next(iter(self.model_fields_set))

    @property
    def transform(self) -> _Transform:
        return getattr(self, self.name)


Transforms = tuple[Step, ...]


def apply(steps: Transforms, image: onp.ndarray, rng: onp.random.Generator, size: tuple[int, int]) -> onp.ndarray:
    """uint8 H x W x C -> float32 C x size[0] x size[1]: the transforms in order, then a bilinear resize to `size`
    if they end elsewhere, then [0, 1] scaling (and `normalize`, where it is listed)."""
    pixels: onp.ndarray = image
    normalize: Optional[Normalize] = None
    for index, step in enumerate(steps):
        t = step.transform
        if isinstance(t, Normalize):
            normalize = t  # applied last, on [0, 1] floats, as ToTensor + Normalize do
            if len(t.mean) not in (1, image.shape[2]):  # ImageNet's three means on grayscale: not what was meant
                raise TransformError(index, step.name, f"{len(t.mean)} means and stds for images of "
                                                       f"{image.shape[2]} channel(s); give one, or one a channel")
            continue
        try:
            pixels = _one(t, pixels, rng)
        except _TooSmall as e:
            raise TransformError(index, step.name, str(e)) from None
    if pixels.shape[:2] != size:
        pixels = _resize(pixels, size)
    out = onp.asarray(pixels, onp.float32).transpose(2, 0, 1) / onp.float32(255)
    if normalize is not None:
        channels = out.shape[0]
        mean, std = (onp.resize(onp.array(v, onp.float32), channels)[:, None, None]
                     for v in (normalize.mean, normalize.std))
        out = (out - mean) / std
    return onp.ascontiguousarray(out, onp.float32)


class _TooSmall(ValueError):
    pass


def _one(t: _Transform, pixels: onp.ndarray, rng: onp.random.Generator) -> onp.ndarray:
    height, width = pixels.shape[:2]
    if isinstance(t, Resize):
        return _resize(pixels, t.out(height, width))
    if isinstance(t, (CenterCrop, RandomCrop)):
        padding = t.padding if isinstance(t, RandomCrop) else 0
        if padding:
            pixels = onp.pad(pixels, ((padding, padding), (padding, padding), (0, 0)))
            height, width = pixels.shape[:2]
        h, w = _pair(t.size)
        if h > height or w > width:
            raise _TooSmall(f"a crop of {h}x{w} is larger than the image ({height}x{width}); resize first")
        top, left = ((rng.integers(0, height - h + 1), rng.integers(0, width - w + 1)) if t.random
                     else ((height - h) // 2, (width - w) // 2))
        return pixels[top:top + h, left:left + w]
    if isinstance(t, RandomResizedCrop):
        top, left, h, w = _resized_crop_window(t, height, width, rng)
        return _resize(pixels[top:top + h, left:left + w], _pair(t.size))
    if isinstance(t, Flip):
        return pixels[:, ::-1] if rng.random() < t.probability else pixels
    if isinstance(t, ColorJitter):
        return _jitter(t, pixels, rng)
    if isinstance(t, Lighting):
        noise = _EIGVEC @ (rng.normal(0, t.alpha, 3).astype(onp.float32) * _EIGVAL)
        shift = noise if pixels.shape[2] == 3 else onp.full(pixels.shape[2], noise.mean(), onp.float32)
        return onp.clip(pixels.astype(onp.float32) + shift, 0, 255)
    raise AssertionError(f"no rule for {type(t).__name__}")


def _resized_crop_window(t: RandomResizedCrop, height: int, width: int,
                         rng: onp.random.Generator) -> tuple[int, int, int, int]:
    """torchvision's RandomResizedCrop.get_params: ten tries at a window of the drawn area and aspect, then the
    largest centred window within the ratio range."""
    area = height * width
    log_ratio = (math.log(t.ratio[0]), math.log(t.ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(t.scale[0], t.scale[1])
        aspect = math.exp(rng.uniform(*log_ratio))
        w, h = int(round(math.sqrt(target * aspect))), int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            return int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w
    aspect = width / height
    if aspect < t.ratio[0]:
        w, h = width, int(round(width / t.ratio[0]))
    elif aspect > t.ratio[1]:
        h, w = height, int(round(height * t.ratio[1]))
    else:
        h, w = height, width
    return (height - h) // 2, (width - w) // 2, h, w


def _jitter(t: ColorJitter, pixels: onp.ndarray, rng: onp.random.Generator) -> onp.ndarray:
    x = pixels.astype(onp.float32)
    gray_weights = onp.array([0.299, 0.587, 0.114], onp.float32) if x.shape[2] == 3 else onp.ones(1, onp.float32)
    for which in rng.permutation(3):
        amount = (t.brightness, t.contrast, t.saturation)[which]
        if not amount:
            continue
        alpha = onp.float32(1 + rng.uniform(-amount, amount))
        if which == 0:
            x = x * alpha
        elif which == 1:
            x = x * alpha + (x @ gray_weights).mean() * (1 - alpha)
        else:
            x = x * alpha + (x @ gray_weights)[..., None] * (1 - alpha)
    return onp.clip(x, 0, 255)


def _resize(pixels: onp.ndarray, size: tuple[int, int]) -> onp.ndarray:
    """Bilinear resize of H x W x C (uint8, or float 0..255) to size = (height, width), with Pillow."""
    from PIL import Image

    if pixels.shape[:2] == tuple(size):
        return pixels
    channels = pixels.shape[2]
    if pixels.dtype == onp.uint8:
        image = Image.fromarray(onp.ascontiguousarray(pixels[..., 0] if channels == 1 else pixels))
        out = onp.asarray(image.resize((size[1], size[0]), Image.Resampling.BILINEAR))
        return out.reshape(size[0], size[1], channels)
    planes = [onp.asarray(Image.fromarray(onp.ascontiguousarray(pixels[..., c], onp.float32), "F")
                          .resize((size[1], size[0]), Image.Resampling.BILINEAR)) for c in range(channels)]
    return onp.stack(planes, axis=2)


def names_at(path: tuple[Any, ...]) -> list[str]:
    """The names a recipe may write at `path` inside a transform list (for did-you-mean): the transforms'
    names at an entry, a transform's fields inside one."""
    if len(path) == 1:
        return list(TRANSFORMS)
    if len(path) == 2 and path[1] in TRANSFORMS:
        return list(TRANSFORMS[path[1]].model_fields)
    return []
