"""Image files and arrays to the packed model's input, as the test
pipelines of the configs prepare them.

Kept deliberately small: the packed file records the data preprocessor's
``mean``/``std``/``to_rgb``, the short side of the test pipeline's
``ResizeEdge`` and the size of its crop, and :func:`prepare_image` applies
them in the pipeline's order:

1. read a file in colour, BGR, as ``LoadImageFromFile`` and MMPretrain's
   inferencer do (arrays are taken as BGR(A) or grayscale);
2. convert to the network's channels: to gray with OpenCV's weights (as
   the ``ToGrayscale`` transform of the 1-channel configs) or gray to
   three equal channels;
3. resize the shorter side to ``resize_short`` (bilinear, OpenCV, sizes
   rounded down as ``ResizeEdge`` does) and centre-crop ``crop_size`` (as
   ``CenterCrop``); without ``resize_short`` the image is resized to
   ``crop_size`` (as ``Resize``);
4. flip BGR to RGB if ``to_rgb`` and normalise with ``mean``/``std``.

The Fashion-MNIST configs give 32 + 28 (1 channel), the ImageNet ones
256 + 224 (3 channels, RGB); a pipeline with any other step gives a file
for tensors only (:func:`unreplayable_step`; e.g. the larq-zoo config's
``EfficientNetCenterCrop``).
"""
import os.path as osp
from typing import Optional, Sequence, Union

import cv2
import numpy as np
import torch
from torch import Tensor

from mmbireal.datasets.transforms import ToGrayscale, transform_type
from mmbireal.utils import InputError

ImageInput = Union[str, np.ndarray]

_TO_GRAY = ToGrayscale.CODES  # the 1-channel configs' conversion
_TO_BGR = {1: cv2.COLOR_GRAY2BGR, 4: cv2.COLOR_BGRA2BGR}


# transforms of a test pipeline that change no pixel, or that step 2 does
REPLAYED_AS_IS = ('LoadImageFromFile', 'ToGrayscale', 'PackInputs')


def unreplayable_step(pipeline: Sequence) -> Optional[str]:
    """The first transform of a test pipeline that :func:`prepare_image`
    does not reproduce, in words; None if it reproduces them all.

    It reproduces ``ResizeEdge`` (short edge, OpenCV bilinear) followed by
    ``CenterCrop``, or ``Resize`` (OpenCV bilinear) with no crop, besides
    :data:`REPLAYED_AS_IS`.
    """
    done = []  # the geometric steps so far
    for transform in pipeline:
        if not isinstance(transform, dict):
            return f'{transform!r} (not a dict)'
        kind = transform_type(transform)
        args = {k: v for k, v in transform.items() if k != 'type'}
        if kind in REPLAYED_AS_IS:
            continue
        bilinear = (args.get('backend', 'cv2') == 'cv2'
                    and args.get('interpolation', 'bilinear') == 'bilinear')
        if kind == 'ResizeEdge' and not done and bilinear and \
                args.get('edge', 'short') == 'short' and \
                isinstance(args.get('scale'), int):
            done.append(kind)
        elif kind == 'CenterCrop' and done == ['ResizeEdge'] and \
                set(args) == {'crop_size'}:
            done.append(kind)
        elif kind == 'Resize' and not done and bilinear and \
                not args.get('keep_ratio', False):
            done.append(kind)
        else:
            given = ', '.join(f'{k}={v!r}' for k, v in args.items())
            return f'{kind}({given})'
    return None


def read_image(image: ImageInput) -> np.ndarray:
    """A uint8 ``H x W`` or ``H x W x C`` array of a file path or array.

    Raises:
        FileNotFoundError: a path that does not exist.
        InputError: an unreadable file or an array of another kind.
    """
    if isinstance(image, str):
        if not osp.isfile(image):
            raise FileNotFoundError(f'image file not found: {image}')
        array = cv2.imread(image, cv2.IMREAD_COLOR)
        if array is None:
            raise InputError(f'cannot read {image} as an image (OpenCV '
                             'reads PNG, JPEG, BMP, TIFF, ...)')
        return array
    is_image = isinstance(image, np.ndarray) and image.dtype == np.uint8 \
        and (image.ndim == 2 or (image.ndim == 3 and image.shape[2] in
                                 (1, 3, 4)))
    if not is_image:
        what = (f'{image.dtype} array of shape {image.shape}' if isinstance(
            image, np.ndarray) else type(image).__name__)
        raise InputError(f'expected an image file path or a uint8 H x W or '
                         f'H x W x 1/3/4 array, got {what}')
    return image


def to_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """``image`` (grayscale or BGR(A)) as ``H x W x channels``."""
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if channels == 1:
        if image.ndim == 3:
            image = cv2.cvtColor(image, _TO_GRAY[image.shape[2]])
        return image[:, :, None]
    if channels != 3:
        raise InputError(f'images can only be prepared for 1- or 3-channel '
                         f'networks, this one takes {channels}')
    depth = 1 if image.ndim == 2 else image.shape[2]
    return image if depth == 3 else cv2.cvtColor(image, _TO_BGR[depth])


def resize_and_crop(image: np.ndarray, resize_short: Optional[int],
                    crop_size: Sequence[int]) -> np.ndarray:
    """Step 3 of the module docstring; ``image`` is ``H x W x C``."""
    crop_h, crop_w = (int(s) for s in crop_size)
    if resize_short is None:
        size = (crop_w, crop_h)
    else:
        h, w = image.shape[:2]
        size = ((resize_short, int(resize_short * h / w)) if w < h else
                (int(resize_short * w / h), resize_short))
    # cv2 drops a trailing channel of 1
    image = cv2.resize(
        image, size, interpolation=cv2.INTER_LINEAR).reshape(
            size[1], size[0], image.shape[2])
    h, w = image.shape[:2]
    top, left = round((h - crop_h) / 2), round((w - crop_w) / 2)
    return image[top:top + crop_h, left:left + crop_w]


def prepare_image(image: ImageInput, channels: int, to_rgb: bool,
                  resize_short: Optional[int], crop_size: Sequence[int],
                  mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """One image as the normalised float32 ``(channels, H, W)`` tensor the
    network takes (the module docstring's steps).

    Args:
        image (str | np.ndarray): A file path, or a uint8 array (BGR(A) or
            grayscale).
        channels (int): The network's input channels, 1 or 3.
        to_rgb (bool): Flip BGR to RGB (3 channels).
        resize_short (int, optional): The short side to resize to first,
            or None.
        crop_size (Sequence[int]): ``(H, W)`` of the centre crop.
        mean (Sequence[float]): Per-channel mean, subtracted.
        std (Sequence[float]): Per-channel std, divided by.

    Returns:
        Tensor: The ``(channels, H, W)`` input.

    Raises:
        FileNotFoundError: a path that does not exist.
        InputError: an unreadable image.
    """
    array = resize_and_crop(
        to_channels(read_image(image), channels), resize_short, crop_size)
    x = torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1)
    if to_rgb and channels == 3:
        x = x.flip(0)
    x = x.float()
    mean_t = torch.tensor([float(m) for m in mean]).view(-1, 1, 1)
    std_t = torch.tensor([float(s) for s in std]).view(-1, 1, 1)
    return (x - mean_t) / std_t
