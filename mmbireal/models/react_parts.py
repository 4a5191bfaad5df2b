"""ReActNet's learnable shifts (Liu et al., ECCV 2020) for Bi-Real blocks.

* :class:`LearnableBias` -- ``x + b`` with one learnable ``b`` per channel,
  initialised to 0. Put before a binary conv (``BiRealNet(sign_bias_cfg=
  dict(type='LearnableBias'))``) it makes the conv's sign an RSign,
  ``sign(x + b)``: a learnable per-channel threshold, trained through the
  sign's surrogate gradient like the input itself.
* :class:`RPReLU` -- ``prelu(x + b1) + b2`` per channel, the activation
  after each block's residual add (``BiRealNet(block_act_cfg=
  dict(type='RPReLU'))``).

Both are built by :func:`build_channel_layer` from a config dict and a
channel count, and both are identities as initialised except for PReLU's
slope (0.25, PyTorch's default and the authors').
"""
from typing import Optional

import torch
import torch.nn as nn
from mmengine.registry import MODELS
from torch import Tensor

from mmbireal.utils.errors import InputError


@MODELS.register_module()
class LearnableBias(nn.Module):
    """``x + bias`` with a learnable per-channel ``bias`` (init 0).

    Args:
        num_channels (int): Channels of the NCHW input.

    Example:
        >>> import torch
        >>> from mmbireal.models import LearnableBias
        >>> shift = LearnableBias(4)
        >>> torch.equal(shift(torch.ones(1, 4, 2, 2)), torch.ones(1, 4, 2, 2))
        True
    """

    def __init__(self, num_channels: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(num_channels))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.bias.view(1, -1, 1, 1)

    def extra_repr(self) -> str:
        return str(self.bias.numel())


@MODELS.register_module()
class RPReLU(nn.Module):
    """ReActNet's RPReLU: ``prelu(x + b1) + b2``, all per channel.

    ``prelu(y) = y`` where ``y > 0``, else ``slope * y``. The shifts start at
    0 and the slope at ``init`` (PyTorch's 0.25, as the authors').

    Args:
        num_channels (int): Channels of the NCHW input.
        init (float): Initial PReLU slope. Defaults to 0.25.

    Example:
        >>> import torch
        >>> from mmbireal.models import RPReLU
        >>> act = RPReLU(2)
        >>> act(torch.tensor([4., -4.]).view(1, 2, 1, 1)).flatten()
        tensor([ 4., -1.], grad_fn=<ViewBackward0>)
    """

    def __init__(self, num_channels: int, init: float = 0.25) -> None:
        super().__init__()
        self.shift_in = LearnableBias(num_channels)
        self.prelu = nn.PReLU(num_channels, init=init)
        self.shift_out = LearnableBias(num_channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.shift_out(self.prelu(self.shift_in(x)))


def build_channel_layer(cfg: Optional[dict], num_channels: int,
                        what: str) -> Optional[nn.Module]:
    """The layer of ``cfg`` for ``num_channels`` channels (None: None).

    Args:
        cfg (dict, optional): A registered ``type`` (``'LearnableBias'``,
            ``'RPReLU'``) and its other arguments; the channel count is
            added as ``num_channels``.
        num_channels (int): Channels of the layer's input.
        what (str): The argument the config came from, for messages.

    Raises:
        InputError: not a dict with a ``type``, or an unknown type.
    """
    if cfg is None:
        return None
    if not isinstance(cfg, dict) or 'type' not in cfg:
        raise InputError(f'{what} must be None or a dict with a type, e.g. '
                         f"dict(type='RPReLU'), got {cfg!r}")
    try:
        return MODELS.build(dict(cfg, num_channels=num_channels))
    except KeyError as e:
        raise InputError(f'{what}: {e.args[0] if e.args else e}') from None
