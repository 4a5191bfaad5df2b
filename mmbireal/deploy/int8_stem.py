"""The opt-in int8 stem: the first conv on 8-bit pixels, VNNI through oneDNN.

The exact stem is an fp32 conv on the normalised input, and at batch 8 it
is about half the packed network's time. Its input, though, is 8-bit
pixels: with the normalisation folded into the weights,
``conv(W, (p - mean) / std) = conv(W / std, p) - conv(W / std, mean)``,
where the second term is the constant ``mean`` image convolved with the
same zero padding, so near the border only the taps inside the image count
-- exactly what padding the normalised input with 0 means. The pixels are
exact uint8, the integer accumulation is exact, and the one approximation
is the per-output-channel int8 rounding of ``W / std``. That is not
bit-exact, so it is an explicit option (``load_packed(path,
stem='int8')``); the deployment benchmark measures what it costs.

Inputs are expected to come from 8-bit images: ``x * std + mean`` is rounded
to the nearest integer in [0, 255].

Without VNNI (AVX2, or AVX-512 before Cascade Lake), oneDNN multiplies
uint8 by int8 with ``vpmaddubsw``, which adds each pair of products in
int16 and saturates: 255 * 127 * 2 does not fit, and whole outputs come out
wrong by units. There the weights are rounded to 7 bits (+-63), whose pairs
fit (255 * 63 * 2 = 32130), at twice the rounding step.
"""
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor


def has_vnni() -> bool:
    """Whether oneDNN's uint8 x int8 products accumulate in int32 here
    (AVX-512 VNNI, as PyTorch's CPU probe reports it). A PyTorch without
    the probe counts as no VNNI: 7-bit weights are right everywhere."""
    probe = getattr(torch.cpu, '_is_vnni_supported', None)
    return bool(probe and probe())


def weight_levels() -> int:
    """The largest int8 weight code the stem may use on this CPU."""
    return 127 if has_vnni() else 63


class Int8Stem:
    """``conv(x, weight) + bias`` for normalised 8-bit images, in int8.

    Args:
        weight: ``(C_out, C_in, k, k)`` fp32 (the BN already folded in).
        bias: ``(C_out,)``.
        mean, std: The per-input-channel normalisation the input had.
        stride, padding: Of the conv.
        levels: The largest weight code, 1-127. Defaults to
            :func:`weight_levels` (127 with VNNI, else 63: see the module's
            docstring); 127 without VNNI gives wrong outputs.

    Raises:
        RuntimeError: this PyTorch has no oneDNN quantized conv.
        ValueError: ``mean`` or ``std`` without one value per input
            channel, or ``levels`` outside 1-127.
    """

    def __init__(self, weight: Tensor, bias: Tensor, mean: Sequence[float],
                 std: Sequence[float], stride: int, padding: int,
                 levels: Optional[int] = None) -> None:
        op = getattr(torch.ops.onednn, 'qconv2d_pointwise', None)
        if op is None:
            raise RuntimeError("stem='int8' needs PyTorch's oneDNN "
                               'quantized conv (torch.ops.onednn), which '
                               'this build lacks')
        cin = weight.shape[1]
        if len(mean) != cin or len(std) != cin:
            raise ValueError(f'mean/std need {cin} values, got {len(mean)}'
                             f'/{len(std)}')
        self.levels = weight_levels() if levels is None else levels
        if not 1 <= self.levels <= 127:
            raise ValueError(f'levels must be in 1-127, got {self.levels}')
        self.stride, self.padding = stride, padding
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
        folded = weight.double() / self.std.double().view(1, -1, 1, 1)
        scale = folded.abs().amax(dim=(1, 2, 3)).clamp_min(
            1e-30) / self.levels
        self.w_scale = scale.float()
        self.w_int8 = torch.round(folded / scale.view(-1, 1, 1, 1)).clamp(
            -self.levels, self.levels).to(torch.int8)
        # the mean-image correction with the weights the int8 conv really
        # has, so it cancels that conv's mean term exactly: the only error
        # left is the rounding's on (pixels - mean)
        self.quantized = self.w_int8.double() * self.w_scale.double().view(
            -1, 1, 1, 1)
        self.bias = bias.double()
        self._packed = torch.ops.onednn.qconv_prepack(
            self.w_int8, self.w_scale, 1.0, 0, [stride] * 2, [padding] * 2,
            [1, 1], 1, None)
        self._zero_points = torch.zeros(weight.shape[0], dtype=torch.long)
        self._bias_maps: Dict[Tuple[int, int], Tensor] = {}

    def bias_map(self, h: int, w: int) -> Tensor:
        """``bias - conv(Wq, mean image)`` for an ``h x w`` input (``Wq``:
        the int8 weights times their scales, ``W / std`` rounded),
        ``(1, C_out, H_out, W_out)``: the per-position constant term."""
        if (h, w) not in self._bias_maps:
            mean_image = self.mean.double().expand(1, -1, h, w)
            corr = F.conv2d(mean_image, self.quantized, None, self.stride,
                            self.padding)
            self._bias_maps[(h, w)] = (self.bias.view(1, -1, 1, 1) -
                                       corr).float().contiguous(
                                           memory_format=torch.channels_last)
        return self._bias_maps[(h, w)]

    def pixels(self, x: Tensor) -> Tensor:
        """The uint8 pixels (channels_last) of normalised images ``x``."""
        p = torch.round(x.float() * self.std + self.mean).clamp_(0, 255)
        return p.to(torch.uint8).contiguous(memory_format=torch.channels_last)

    def __call__(self, x: Tensor) -> Tensor:
        """The stem conv of NCHW normalised ``x`` (float32 out,
        channels_last)."""
        h, w = x.shape[-2:]
        y = torch.ops.onednn.qconv2d_pointwise(
            self.pixels(x), 1.0, 0, self._packed, self.w_scale,
            self._zero_points, None, [self.stride] * 2, [self.padding] * 2,
            [1, 1], 1, 1.0, 0, torch.float32, 'none', [], '')
        return y.add_(self.bias_map(h, w))
