"""Pure-PyTorch bit packing and the reference binary 3x3 convolution.

This is the path used when the compiled engine is not available, and the
yardstick the engine is tested against bit for bit. Everything here is
exact: the convolution runs on +-1 floats, whose products are exact and
whose partial sums are integers far below 2**24, so fp32 gives the same
integers as XOR + popcount in any summation order.

Bit conventions shared with the engine and the packed file: channels are
packed along the last dim into 64-bit words (stored as ``torch.int64``),
bit ``j`` of word ``k`` is channel ``64 * k + j``, bit 1 means +1
(``not x < 0``, so ``sign(0) = +1`` and NaN gives +1, as in training) and
the padding bits past
the last channel are 0. ReActNet's RSign, ``sign(x + b)``, is the same sign
of ``x + b`` (computed here as training computes it; the engine compares
``not x < -b``, which is the same bit: a float sum rounds to a value
``>= 0`` exactly when the exact sum is, and NaN stays NaN).
"""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from mmbireal.models.padding import Pads, input_pads

_BIT_WEIGHTS = 2**torch.arange(8, dtype=torch.int64)


def num_words(channels: int) -> int:
    """Number of 64-bit words holding ``channels`` bits."""
    return (channels + 63) // 64


def sign_pm1(x: Tensor) -> Tensor:
    """``-1`` where ``x < 0`` else ``+1`` (float32; NaN too), as the
    binarizers do."""
    return torch.where(x < 0, -1.0, 1.0).to(torch.float32)


def pack_signs_torch(x: Tensor) -> Tensor:
    """Pack ``not x < 0`` (the sign bit training gives, NaN +1) along the
    last dim into int64 words.

    Goes through bytes (8 bits summed as small ints, exact) and
    reinterprets each group of 8 bytes as one little-endian int64, so no
    arithmetic ever touches bit 63.
    """
    channels = x.shape[-1]
    words = num_words(channels)
    bits = (~(x < 0)).to(torch.int64)  # NaN -> 1, as in training
    bits = F.pad(bits, (0, words * 64 - channels))
    bits = bits.reshape(*x.shape[:-1], words * 8, 8)
    packed = (bits * _BIT_WEIGHTS.to(x.device)).sum(-1).to(
        torch.uint8).contiguous()
    return packed.view(torch.int64)


def unpack_signs(words: Tensor, channels: int) -> Tensor:
    """Inverse of :func:`pack_signs_torch`: ``+-1`` floats, last dim
    ``channels``."""
    as_bytes = words.contiguous().view(torch.uint8).to(torch.int64)
    bits = (as_bytes.unsqueeze(-1) >> torch.arange(8, device=words.device)) & 1
    bits = bits.reshape(*words.shape[:-1], -1)[..., :channels]
    return bits.to(torch.float32) * 2 - 1


def conv3x3_pads(padding: str, height: int, width: int,
                 stride: int) -> Pads:
    """``(left, right, top, bottom)`` zeros around a ``height`` x ``width``
    input of a binary 3x3 conv with ``stride`` under the backbone's
    ``padding`` (:func:`mmbireal.models.padding.input_pads`): 1 on every
    side for ``'symmetric'``."""
    pads = input_pads(padding, height, width, 3, stride)
    return (1, 1, 1, 1) if pads is None else pads


def engine_pads(padding: str, height: int, width: int,
                stride: int) -> Tuple[int, int]:
    """``(top, left)`` of :func:`conv3x3_pads`: what the engine takes (the
    output size, ``ceil(size / stride)``, fixes the rest)."""
    left, _, top, _ = conv3x3_pads(padding, height, width, stride)
    return top, left


def max_pool_geometry(padding: str, height: int, width: int,
                      max_pool: Tuple[int, int, int]) -> Tuple[int, ...]:
    """``(kernel, stride, pad_top, pad_left, out_height, out_width)`` of the
    stem's max-pool ``max_pool = (kernel, stride, padding)`` on a
    ``height`` x ``width`` input under the backbone's ``padding`` (as
    :meth:`~mmbireal.models.backbones.bireal_net.StemGeometry.pool` pads):
    what the engine's fused pool takes."""
    kernel, stride, pad = max_pool
    pads = input_pads(padding, height, width, kernel, stride)
    left, right, top, bottom = (pad, ) * 4 if pads is None else pads
    return (kernel, stride, top, left,
            (height + top + bottom - kernel) // stride + 1,
            (width + left + right - kernel) // stride + 1)


def binary_conv3x3_torch(x: Tensor, weight_pm1: Tensor, stride: int,
                         padding: str = 'symmetric') -> Tensor:
    """Integer dot products of the binary 3x3 conv, NHWC.

    Args:
        x: ``(N, H, W, C)`` real activations; only their signs are used.
        weight_pm1: ``(C_out, C, 3, 3)`` weights, exactly ``+-1``.
        stride: 1 or 2.
        padding: The backbone's padding mode (:func:`conv3x3_pads`):
            ``'symmetric'`` (1 on every side) or ``'tf_same'``.

    Returns:
        ``(N, H_out, W_out, C_out)`` float32 holding exact integers:
        ``sum over valid taps of sign(x) * w``. The zero padding is applied
        to the already binarized input, so padded taps add 0, as in
        training.
    """
    signs = sign_pm1(x).permute(0, 3, 1, 2)
    if padding == 'symmetric':
        dots = F.conv2d(signs, weight_pm1, stride=stride, padding=1)
    else:
        pads = conv3x3_pads(padding, x.shape[1], x.shape[2], stride)
        dots = F.conv2d(F.pad(signs, pads), weight_pm1, stride=stride)
    return dots.permute(0, 2, 3, 1).contiguous()


def affine_epilogue(dots: Tensor, scale: Tensor, shift: Tensor,
                    residual: Optional[Tensor] = None,
                    block_act: Optional[Tuple[Tensor, Tensor,
                                              Tensor]] = None) -> Tensor:
    """``dots * scale + shift (+ residual)`` on NHWC, one rounding per op,
    then ReActNet's RPReLU if ``block_act = (b1, slope, b2)`` is given:
    ``y = v + b1; y = y if y > 0 else slope * y; y + b2``.

    The engine rounds after each of the same operations (it is built
    without FMA contraction), so both give identical floats.
    """
    out = dots * scale
    out = out + shift
    if residual is not None:
        out = out + residual
    if block_act is not None:
        shift_in, slope, shift_out = block_act
        out = out + shift_in
        out = torch.where(out > 0, out, out * slope)  # PyTorch's prelu
        out = out + shift_out
    return out


def downsample_torch(x: Tensor, stride: int, weight: Tensor,
                     bias: Tensor) -> Tensor:
    """The downsample shortcut on NHWC: avg-pool ``stride`` (ceil mode,
    padding not counted), then the 1x1 conv ``weight`` ``(C_out, C_in)``
    with ``bias``, in the engine's order of operations.

    Each sum and product is a separate fp32 op in a fixed order -- pooled
    taps row by row from 0, a border window adding 0 for its missing taps,
    then one division by the count; the 1x1 conv input channel by input
    channel, then the bias -- so the engine's ``mmb_forward``, which does
    the same without FMA contraction, gives identical floats. (A GEMM's
    blocking would round differently.)
    """
    if stride > 1:
        n, h, w, c = x.shape
        ho, wo = -(-h // stride), -(-w // stride)
        padded = F.pad(x, (0, 0, 0, wo * stride - w, 0, ho * stride - h))
        pooled = x.new_zeros(n, ho, wo, c)
        for dy in range(stride):
            for dx in range(stride):
                pooled = pooled + padded[:, dy::stride, dx::stride]
        ones = F.pad(x.new_ones(h, w), (0, wo * stride - w, 0,
                                        ho * stride - h))
        count = ones.reshape(ho, stride, wo, stride).sum((1, 3))
        x = pooled / count.view(1, ho, wo, 1)
    weight_t = weight.t()
    out = x[..., 0:1] * weight_t[0]
    for k in range(1, x.shape[-1]):
        out = out + x[..., k:k + 1] * weight_t[k]
    return out + bias
