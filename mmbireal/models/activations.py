"""Real-valued activations of Bi-Real Net's pre-training steps.

Step (a) uses ``ReLU`` and step (c) ``clip(-1, x, 1)``: both already exist
in mmcv's registry (``dict(type='ReLU')``, ``dict(type='Clip')``, a clamp to
[-1, 1]). Step (b)'s leaky clip is defined here.
"""
import torch.nn as nn
from mmengine.registry import MODELS
from torch import Tensor

from mmbireal.utils.errors import InputError


@MODELS.register_module()
class LeakyClip(nn.Module):
    """Identity on ``(min, max)``, slope ``slope`` outside.

    Step (b) of Bi-Real Net's real-valued pre-training:
    ``f(x) = x`` inside, ``min + slope * (x - min)`` below and
    ``max + slope * (x - max)`` above.

    Args:
        min (float): Lower end of the identity range. Defaults to -1.
        max (float): Upper end of the identity range. Defaults to 1.
        slope (float): Slope outside the range. Defaults to 0.1.

    Example:
        >>> import torch
        >>> LeakyClip()(torch.tensor([-3.0, 0.5, 2.0])).tolist()
        [-1.2000000476837158, 0.5, 1.100000023841858]
        >>> act_cfg = dict(type='LeakyClip')  # BiRealNet's pre-training
    """

    def __init__(self,
                 min: float = -1.0,
                 max: float = 1.0,
                 slope: float = 0.1) -> None:
        super().__init__()
        if not min < max:
            raise InputError(f'LeakyClip needs min < max, got {min}, {max}')
        self.min, self.max, self.slope = min, max, slope

    def forward(self, x: Tensor) -> Tensor:
        clipped = x.clamp(self.min, self.max)
        return clipped + self.slope * (x - clipped)

    def extra_repr(self) -> str:
        return f'min={self.min}, max={self.max}, slope={self.slope}'
