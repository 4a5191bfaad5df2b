"""The binary convolution of Bi-Real Net."""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.registry import MODELS
from torch import Tensor

from mmbireal.utils.errors import InputError

from .binarizers import (
    WEIGHT_BINARIZER_SPECS,
    WeightBinarizerSpec,
    binarize_weight,
    get_act_binarizer,
    get_weight_binarizer,
    mul_surrogate_grad,
    sign_nonzero,
    weight_grad,
)


class _BinaryConv2dFunction(torch.autograd.Function):
    """``conv2d(binarize(x), binarize(w))`` keeping only ``x`` for backward.

    Binarizing and convolving separately keeps ``x`` (for the sign's
    surrogate gradient), ``sign(x)`` and the binarized weight (for the conv
    gradients) alive until backward. Here both binarized tensors are
    recomputed in backward (with the per-channel scale kept from forward),
    so a binary conv holds no more memory for backward than a float conv
    (its input and its latent weight). Once the conv gradients are
    computed, the surrogate gradients are written into the recomputed
    tensors' memory: fresh large tensors cost page faults.
    """

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Optional[Tensor],
                conv: nn.Conv2d, act: Optional[str],
                weight_spec: Optional[WeightBinarizerSpec]) -> Tensor:
        x_b, w_b, alpha = _binarized(x, weight, act, weight_spec)
        ctx.save_for_backward(x, weight, alpha)
        ctx.conv, ctx.act, ctx.weight_spec = conv, act, weight_spec
        ctx.has_bias = bias is not None
        return F.conv2d(x_b, w_b, bias, conv.stride, conv.padding,
                        conv.dilation, conv.groups)

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, weight, alpha = ctx.saved_tensors
        conv, act, spec = ctx.conv, ctx.act, ctx.weight_spec
        x_b, w_b, alpha = _binarized(x, weight, act, spec, alpha)
        needs = ctx.needs_input_grad
        # under autocast the conv ran (and grad arrives) in low precision
        grad_x, grad_w, grad_b = torch.ops.aten.convolution_backward(
            grad, x_b.to(grad.dtype), w_b.to(grad.dtype),
            [weight.shape[0]] if ctx.has_bias else None, conv.stride,
            conv.padding, conv.dilation, False, [0, 0], conv.groups,
            [needs[0], needs[1], ctx.has_bias and needs[2]])
        # x_b and w_b are dead now: the surrogate gradients reuse them
        if grad_x is not None:
            grad_x = grad_x.to(x.dtype)
            if act is not None:
                grad_x = mul_surrogate_grad(act, x, grad_x, out=grad_x,
                                            scratch=x_b)
        if grad_w is not None:
            grad_w = grad_w.to(weight.dtype)
            if spec is not None:
                grad_w = weight_grad(weight, grad_w, spec, alpha, out=w_b)
        return grad_x, grad_w, grad_b, None, None, None


def _binarized(x: Tensor, weight: Tensor, act: Optional[str],
               spec: Optional[WeightBinarizerSpec],
               alpha: Optional[Tensor] = None):
    """``(x_b, w_b, alpha)``; ``x``/``weight`` themselves where not
    binarized (alpha None where the weight binarizer has none)."""
    x_b = x if act is None else sign_nonzero(x)
    w_b, alpha = (weight, None) if spec is None else binarize_weight(
        weight, spec, alpha=alpha)
    return x_b, w_b, alpha


# Registered in mmengine's root registry (like mmcv's own layers) so that
# ``mmcv.cnn.build_conv_layer`` finds it under any default scope.
@MODELS.register_module()
class BinaryConv2d(nn.Conv2d):
    """A 2D convolution on binarized activations and binarized weights.

    The input is binarized first and then zero-padded, so padded taps
    contribute 0 (not -1 or +1), as in the authors' implementations. The
    latent real-valued weight is kept in ``self.weight`` and binarized at
    every forward pass.

    Args:
        act_binarizer (str, optional): Name of the activation binarizer,
            ``'approx_sign'``, ``'ste'`` or None (real activations).
            Defaults to ``'approx_sign'``.
        weight_binarizer (str, optional): Name of the weight binarizer,
            ``'magnitude_aware'``, ``'scaled_sign'``, ``'sign'`` or None
            (real weights). Defaults to ``'magnitude_aware'``.
        *args, **kwargs: The arguments of :class:`torch.nn.Conv2d`. Only
            ``padding_mode='zeros'`` is accepted.

    Example:
        >>> import torch
        >>> from mmcv.cnn import build_conv_layer
        >>> import mmbireal  # noqa: F401 (registers the layer)
        >>> conv = build_conv_layer(
        ...     dict(type='BinaryConv2d', act_binarizer='approx_sign'),
        ...     8, 16, 3, padding=1, bias=False)
        >>> conv(torch.rand(1, 8, 5, 5)).shape
        torch.Size([1, 16, 5, 5])
    """

    def __init__(self,
                 *args,
                 act_binarizer: Optional[str] = 'approx_sign',
                 weight_binarizer: Optional[str] = 'magnitude_aware',
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.padding_mode != 'zeros':
            raise InputError(
                f'BinaryConv2d supports padding_mode="zeros" only, got '
                f'{self.padding_mode!r}')
        self.act_binarizer = act_binarizer
        self.weight_binarizer = weight_binarizer

    @property
    def act_binarizer(self) -> Optional[str]:
        return self._act_binarizer

    @act_binarizer.setter
    def act_binarizer(self, name: Optional[str]) -> None:
        self._binarize_act = get_act_binarizer(name)  # validates the name
        self._act_binarizer = name

    @property
    def weight_binarizer(self) -> Optional[str]:
        return self._weight_binarizer

    @weight_binarizer.setter
    def weight_binarizer(self, name: Optional[str]) -> None:
        self._binarize_weight = get_weight_binarizer(name)  # validates
        self._weight_spec = WEIGHT_BINARIZER_SPECS.get(name)
        self._weight_binarizer = name

    def binary_weight(self) -> Tensor:
        """The weight the convolution really uses.

        Without autograd (evaluation, inference) the binarized weight is
        computed once and reused until the weight changes, so the emulated
        model does not re-binarize its weights at every forward.
        """
        if self._binarize_weight is None:
            return self.weight
        if torch.is_grad_enabled() and self.weight.requires_grad:
            return self._binarize_weight(self.weight)
        w = self.weight
        # _version moves on every in-place change (optimizer step,
        # load_state_dict); data_ptr/device on .to() and re-assignment.
        key = (w._version, w.data_ptr(), w.device, w.dtype,
               self._weight_binarizer)
        if getattr(self, '_cache_key', None) != key:
            with torch.no_grad():
                self._cached_weight = self._binarize_weight(w)
            self._cache_key = key
        return self._cached_weight

    def forward(self, x: Tensor) -> Tensor:
        if self._act_binarizer is None and self._weight_spec is None:
            return self._conv_forward(x, self.weight, self.bias)
        if not torch.is_grad_enabled() or isinstance(self.padding, str):
            # inference (cached weights), or 'same'/'valid' padding
            if self._binarize_act is not None:
                x = self._binarize_act(x)
            return self._conv_forward(x, self.binary_weight(), self.bias)
        return _BinaryConv2dFunction.apply(x, self.weight, self.bias, self,
                                           self._act_binarizer,
                                           self._weight_spec)

    def extra_repr(self) -> str:
        return (super().extra_repr() +
                f', act_binarizer={self.act_binarizer!r}'
                f', weight_binarizer={self.weight_binarizer!r}')
