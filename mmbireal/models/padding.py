"""Padding modes: where a conv or pool of the backbone pads its input.

``'symmetric'`` is PyTorch's: each layer pads its own fixed amount on every
side (``kernel // 2`` for every layer of the backbone). ``'tf_same'`` is
TensorFlow's ``padding='same'``: the output has ``ceil(size / stride)``
positions and the total padding this needs,
``max((ceil(size / stride) - 1) * stride + kernel - size, 0)``, is split
with the smaller half before, so on a stride-2 layer at an even size there
is one row/column less before and the same after (at 224 px: the 7x7/2 stem
pads 2 before and 3 after, the 3x3/2 pool and convs 0 and 1).

:func:`input_pads` is the one definition every layer that pads asks:
:class:`InputPadConv2d`, :class:`InputPadMaxPool2d`, :class:`BinaryConv2d`
(``padding='tf_same'``: it pads its *binarized* input with 0) and the
packed model and engine (:mod:`mmbireal.deploy`). A new mode is one entry
of :data:`INPUT_PADS`. The symmetric mode keeps
each layer's own PyTorch padding, so a model built with it is the one built
before padding modes existed.
"""
from typing import Callable, Dict, Optional, Tuple, Union

import torch.nn as nn
import torch.nn.functional as F
from mmengine.registry import MODELS
from torch import Tensor

from mmbireal.utils.errors import InputError

#: The default mode: each layer keeps its own PyTorch padding.
SYMMETRIC = 'symmetric'

#: F.pad order: (left, right, top, bottom)
Pads = Tuple[int, int, int, int]

#: A window size, stride or dilation: one int for both dims, or (h, w)
IntOrPair = Union[int, Tuple[int, int]]


def _pair(value: IntOrPair) -> Tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


def tf_same_pads(size: int, kernel: int, stride: int) -> Tuple[int, int]:
    """``(before, after)`` of TensorFlow's ``'same'`` padding of one
    dimension of ``size`` for a window ``kernel`` with ``stride``."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


#: The modes that pad a layer's input themselves -> ``(before, after)`` of
#: one dimension of ``size`` for a window ``kernel`` with ``stride``. A new
#: mode is one entry here (and, to be exported, the engine's support).
INPUT_PADS: Dict[str, Callable[[int, int, int], Tuple[int, int]]] = {
    'tf_same': tf_same_pads,
}

#: The accepted padding modes; the first is the default.
PADDINGS = (SYMMETRIC, *INPUT_PADS)


def check_padding(padding: str) -> str:
    """``padding`` if it is one of :data:`PADDINGS`, else
    :class:`InputError` naming what is accepted."""
    # a tuple, not a dict: an unhashable value is refused, not a crash
    if not isinstance(padding, str) or padding not in PADDINGS:
        raise InputError(f'invalid padding {padding!r}; accepted: '
                         f'{PADDINGS}')
    return padding


def pads_input(padding: str) -> bool:
    """Whether layers pad their input under ``padding`` (by
    :func:`input_pads`, then convolve or pool with padding 0) rather than
    keep their own PyTorch padding.

    Raises:
        InputError: ``padding`` is not one of :data:`PADDINGS`.
    """
    return check_padding(padding) != SYMMETRIC


def input_pads(padding: str, height: int, width: int, kernel: IntOrPair,
               stride: IntOrPair, dilation: IntOrPair = 1) -> Optional[Pads]:
    """The pads a layer adds to its input under ``padding``.

    Args:
        padding (str): One of :data:`PADDINGS`.
        height (int): The input's height.
        width (int): The input's width.
        kernel (int | tuple[int, int]): The layer's window, ``(h, w)``.
        stride (int | tuple[int, int]): Its stride.
        dilation (int | tuple[int, int]): Its dilation; the window then
            spans ``dilation * (kernel - 1) + 1``. Defaults to 1.

    Returns:
        tuple[int, int, int, int] | None: ``(left, right, top, bottom)``;
        None for ``'symmetric'``, where the layer's own PyTorch padding
        applies unchanged.
    """
    if not pads_input(padding):
        return None
    pads = INPUT_PADS[padding]
    (kh, kw), (sh, sw), (dh, dw) = map(_pair, (kernel, stride, dilation))
    top, bottom = pads(height, dh * (kh - 1) + 1, sh)
    left, right = pads(width, dw * (kw - 1) + 1, sw)
    return left, right, top, bottom


def pad_input(x: Tensor, padding: str, kernel: IntOrPair,
              stride: IntOrPair, value: float = 0.0,
              dilation: IntOrPair = 1) -> Tensor:
    """``x`` (``(..., H, W)``) padded with ``value`` by :func:`input_pads`.

    Args:
        x (Tensor): The layer's input.
        padding (str): One of :data:`PADDINGS`.
        kernel, stride, dilation: The layer's, as for :func:`input_pads`.
        value (float): The pad value. Defaults to 0.

    Returns:
        Tensor: ``x`` padded; ``x`` itself where that adds nothing (for
        the symmetric mode the layer then pads on its own).
    """
    pads = input_pads(padding, x.shape[-2], x.shape[-1], kernel, stride,
                      dilation)
    return x if pads is None or not any(pads) else F.pad(
        x, pads, value=value)


def _padding_mode(padding: str, layer: str) -> str:
    if not isinstance(padding, str) or padding not in INPUT_PADS:
        raise InputError(f'{layer} pads its input by a mode of '
                         f'{tuple(INPUT_PADS)}, got padding={padding!r}')
    return padding


# in mmengine's root registry, as BinaryConv2d: build_conv_layer finds it
@MODELS.register_module()
class InputPadConv2d(nn.Conv2d):
    """A real-valued ``nn.Conv2d`` that pads its input by a padding mode
    (:func:`input_pads`), e.g. ``'tf_same'``: zeros, fewer before than
    after where the total is odd.

    Args:
        *args: ``nn.Conv2d``'s (``in_channels``, ``out_channels``,
            ``kernel_size``, ...).
        padding (str): A mode of :data:`INPUT_PADS`. Defaults to
            ``'tf_same'``.
        **kwargs: ``nn.Conv2d``'s (``stride``, ``bias``, ...).

    Example:
        >>> import torch
        >>> conv = InputPadConv2d(3, 8, 7, stride=2)
        >>> tuple(conv(torch.rand(1, 3, 224, 224)).shape)
        (1, 8, 112, 112)
    """

    def __init__(self, *args, padding: str = 'tf_same', **kwargs) -> None:
        self.input_padding = _padding_mode(padding, 'InputPadConv2d')
        super().__init__(*args, padding=0, **kwargs)

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(
            pad_input(x, self.input_padding, self.kernel_size, self.stride,
                      dilation=self.dilation))

    def extra_repr(self) -> str:
        return super().extra_repr() + \
            f', input_padding={self.input_padding!r}'


class InputPadMaxPool2d(nn.MaxPool2d):
    """``nn.MaxPool2d(kernel_size, stride)`` that pads its input by a
    padding mode with -inf (a padded tap never wins).

    Args:
        kernel_size (int): The window.
        stride (int): The stride.
        padding (str): A mode of :data:`INPUT_PADS`. Defaults to
            ``'tf_same'``.
    """

    def __init__(self, kernel_size: int, stride: int,
                 padding: str = 'tf_same') -> None:
        super().__init__(kernel_size, stride)
        self.input_padding = _padding_mode(padding, 'InputPadMaxPool2d')

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(
            pad_input(x, self.input_padding, self.kernel_size, self.stride,
                      value=float('-inf')))
