"""Data transforms for the 1-channel (Fashion-MNIST) configs."""
import cv2
from mmcv.transforms import BaseTransform
from mmpretrain.registry import TRANSFORMS


def transform_type(transform: dict) -> str:
    """A pipeline step's ``type`` without its scope:
    ``'mmpretrain.ResizeEdge'`` and ``'ResizeEdge'`` both give
    ``'ResizeEdge'``."""
    return str(transform.get('type', '')).split('.')[-1]


@TRANSFORMS.register_module()
class ToGrayscale(BaseTransform):
    """Make ``results['img']`` one channel; 1-channel images pass as they
    are.

    The Fashion-MNIST datasets give ``H x W`` arrays, but an image file
    read by MMPretrain's inferencer (or ``LoadImageFromFile``) arrives as
    ``H x W x 3`` BGR, also when the file is grayscale. Colour images are
    converted with OpenCV's BGR(A)-to-gray weights; for a grayscale file
    read in colour (three equal channels) that gives back its pixel
    values exactly.

    Required keys: ``img``. Modified keys: ``img`` (``H x W``, uint8 as
    given), ``img_shape`` unchanged.

    Example:
        >>> test_pipeline = [dict(type='ToGrayscale'),
        ...                  dict(type='ResizeEdge', scale=32), ...]
    """

    CODES = {3: cv2.COLOR_BGR2GRAY, 4: cv2.COLOR_BGRA2GRAY}

    def transform(self, results: dict) -> dict:
        img = results['img']
        if img.ndim == 3 and img.shape[2] in self.CODES:
            results['img'] = cv2.cvtColor(img, self.CODES[img.shape[2]])
        return results
