"""The binary convolution of Bi-Real Net."""
from typing import List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.registry import MODELS
from torch import Tensor

from mmbireal.utils.errors import InputError

from .binarize_kernels import binarize_ops, check_backend
from .binarizers import (
    ActBinarizer,
    BinarizerConfig,
    WeightBinarizer,
    build_binarizer,
)
from .padding import INPUT_PADS, SYMMETRIC, Pads, input_pads


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
                conv: nn.Conv2d, act: Optional[ActBinarizer],
                weight_binarizer: Optional[WeightBinarizer],
                backend: str) -> Tensor:
        x_b, w_b, alpha = _binarized(x, weight, act, weight_binarizer,
                                     backend)
        ctx.save_for_backward(x, weight, alpha)
        ctx.conv, ctx.act, ctx.weight_binarizer = conv, act, weight_binarizer
        ctx.backend, ctx.has_bias = backend, bias is not None
        pads = conv.input_pads(x)
        if pads is not None:
            x_b = F.pad(x_b, pads)
        return F.conv2d(x_b, w_b, bias, conv.stride, conv.padding,
                        conv.dilation, conv.groups)

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, weight, alpha = ctx.saved_tensors
        conv, act, wbin, backend = (ctx.conv, ctx.act, ctx.weight_binarizer,
                                    ctx.backend)
        x_b, w_b, alpha = _binarized(x, weight, act, wbin, backend, alpha)
        needs = ctx.needs_input_grad
        pads = conv.input_pads(x)
        x_conv = x_b if pads is None else F.pad(x_b, pads)
        # under autocast the conv ran (and grad arrives) in low precision
        grad_x, grad_w, grad_b = torch.ops.aten.convolution_backward(
            grad, x_conv.to(grad.dtype), w_b.to(grad.dtype),
            [weight.shape[0]] if ctx.has_bias else None, conv.stride,
            conv.padding, conv.dilation, False, [0, 0], conv.groups,
            [needs[0], needs[1], ctx.has_bias and needs[2]])
        del x_conv
        # x_b and w_b are dead now: the surrogate gradients reuse them
        if grad_x is not None:
            if pads is not None:  # the padded taps' gradient is dropped
                left, _, top, _ = pads
                grad_x = grad_x[..., top:top + x.shape[-2],
                                left:left + x.shape[-1]].contiguous()
            grad_x = grad_x.to(x.dtype)
            if act is not None:
                grad_x = act.mul_surrogate_grad(
                    x, grad_x, binarize_ops(backend, x, grad_x), out=grad_x,
                    scratch=x_b)
        if grad_w is not None:
            grad_w = grad_w.to(weight.dtype)
            if wbin is not None:
                grad_w = wbin.weight_grad_(
                    weight, grad_w,
                    binarize_ops(backend, weight, grad_w, scale=alpha),
                    alpha, out=w_b)
        return grad_x, grad_w, grad_b, None, None, None, None


def _binarized(x: Tensor, weight: Tensor, act: Optional[ActBinarizer],
               weight_binarizer: Optional[WeightBinarizer], backend: str,
               alpha: Optional[Tensor] = None):
    """``(x_b, w_b, alpha)``; ``x``/``weight`` themselves where not
    binarized (alpha None where the weight binarizer has none)."""
    x_b = x if act is None else act.binarize(x, binarize_ops(backend, x))
    if weight_binarizer is None:
        return x_b, weight, None
    w_b, alpha = weight_binarizer.binarize(
        weight, binarize_ops(backend, weight, scale=alpha), alpha=alpha)
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
        act_binarizer (str | dict | ActBinarizer, optional): The activation
            binarizer: a name (``'approx_sign'``, ``'ste'``), a dict
            (``dict(type='ApproxSign')``), an instance, or None (real
            activations); see :func:`~mmbireal.models.build_binarizer`.
            Defaults to ``'approx_sign'``.
        weight_binarizer (str | dict | WeightBinarizer, optional): The
            weight binarizer likewise (``'magnitude_aware'``,
            ``'scaled_sign'``, ``'sign'``, or None: real weights). Defaults
            to ``'magnitude_aware'``.
        backend (str): Where the binarizers run: ``'auto'`` (the one-pass
            CPU kernels where they apply, PyTorch ops elsewhere and, after
            one warning, without a compiler), ``'native'`` (the same, but
            an error at construction when the kernels cannot be built) or
            ``'torch'`` (PyTorch ops). ``MMBIREAL_TRAIN_KERNELS=torch``
            overrides it. Defaults to ``'auto'``.
        *args, **kwargs: The arguments of :class:`torch.nn.Conv2d`. Only
            ``padding_mode='zeros'`` is accepted; ``padding='tf_same'``
            (keyword) pads the binarized input as TensorFlow's ``'same'``
            does (see :mod:`mmbireal.models.padding`).

    Example:
        >>> import torch
        >>> from mmcv.cnn import build_conv_layer
        >>> import mmbireal  # noqa: F401 (registers the layer)
        >>> conv = build_conv_layer(
        ...     dict(type='BinaryConv2d', act_binarizer='approx_sign'),
        ...     8, 16, 3, padding=1, bias=False)
        >>> conv(torch.rand(1, 8, 5, 5)).shape
        torch.Size([1, 16, 5, 5])
        >>> conv.binarizes_input, conv.binarizes_weight
        (True, True)
    """

    def __init__(self,
                 *args,
                 act_binarizer: BinarizerConfig = 'approx_sign',
                 weight_binarizer: BinarizerConfig = 'magnitude_aware',
                 backend: str = 'auto',
                 **kwargs) -> None:
        # a padding mode ('tf_same') is ours, not nn.Conv2d's: the conv
        # pads its binarized input by it, then convolves with padding 0
        self.input_padding = SYMMETRIC
        if isinstance(kwargs.get('padding'), str) and \
                kwargs['padding'] in INPUT_PADS:
            self.input_padding = kwargs['padding']
            kwargs['padding'] = 0
        super().__init__(*args, **kwargs)
        if self.padding_mode != 'zeros':
            raise InputError(
                f'BinaryConv2d supports padding_mode="zeros" only, got '
                f'{self.padding_mode!r}')
        self.act_binarizer = act_binarizer
        self.weight_binarizer = weight_binarizer
        self.backend = backend

    def input_pads(self, x: Tensor) -> Optional[Pads]:
        """``F.pad``'s pads of the binarized ``x`` before the conv (then
        run with ``self.padding``), None where there are none."""
        if self.input_padding == SYMMETRIC:
            return None
        pads = input_pads(self.input_padding, x.shape[-2], x.shape[-1],
                          self.kernel_size, self.stride, self.dilation)
        return pads if any(pads) else None

    @property
    def act_binarizer(self) -> Optional[str]:
        """The activation binarizer's name (None: real activations); set
        it by name, dict or instance."""
        act = self._act
        return None if act is None else act.name

    @act_binarizer.setter
    def act_binarizer(self, cfg: BinarizerConfig) -> None:
        self._act = build_binarizer(cfg, 'activation')  # validates

    @property
    def weight_binarizer(self) -> Optional[str]:
        """The weight binarizer's name (None: real weights); set it by
        name, dict or instance."""
        wbin = self._weight_bin
        return None if wbin is None else wbin.name

    @weight_binarizer.setter
    def weight_binarizer(self, cfg: BinarizerConfig) -> None:
        self._weight_bin = build_binarizer(cfg, 'weight')  # validates

    @property
    def act_binarizer_obj(self) -> Optional[ActBinarizer]:
        """The activation binarizer itself (None: real activations)."""
        return self._act

    @property
    def weight_binarizer_obj(self) -> Optional[WeightBinarizer]:
        """The weight binarizer itself (None: real weights)."""
        return self._weight_bin

    @property
    def binarizes_input(self) -> bool:
        """Whether the input is binarized."""
        return self._act is not None

    @property
    def binarizes_weight(self) -> bool:
        """Whether the weight is binarized (it is then stored in
        ``weight_binarizer_obj.bits`` bits)."""
        return self._weight_bin is not None

    @property
    def backend(self) -> str:
        """``'auto'``, ``'native'`` or ``'torch'`` (see the class)."""
        return self._backend

    @backend.setter
    def backend(self, backend: str) -> None:
        self._backend = check_backend(backend)

    def binary_weight(self) -> Tensor:
        """The weight the convolution really uses.

        In eval mode without autograd (evaluation, inference) the binarized
        weight is computed once and reused until the weight changes, so the
        emulated model does not re-binarize its weights at every forward.
        Writes through ``.data`` do not move the weight's version counter:
        the cache is dropped whenever the mode is set (mmengine's EMA swap
        and PreciseBN write that way, then ``model.eval()`` follows).
        """
        wbin = self._weight_bin
        if wbin is None:
            return self.weight
        if self.training or (torch.is_grad_enabled()
                             and self.weight.requires_grad):
            return wbin(self.weight, self._backend)
        w = self.weight
        # _version moves on every in-place change (optimizer step,
        # load_state_dict); data_ptr/device on .to() and re-assignment.
        key = (w._version, w.data_ptr(), w.device, w.dtype, wbin,
               self._backend)
        if getattr(self, '_cache_key', None) != key:
            with torch.no_grad():
                self._cached_weight = wbin(w, self._backend)
            self._cache_key = key
        return self._cached_weight

    def train(self, mode: bool = True) -> 'BinaryConv2d':
        self._cache_key = self._cached_weight = None
        return super().train(mode)

    def forward(self, x: Tensor) -> Tensor:
        act, wbin = self._act, self._weight_bin
        pads = self.input_pads(x)
        if act is None and wbin is None:
            x = x if pads is None else F.pad(x, pads)
            return self._conv_forward(x, self.weight, self.bias)
        if not torch.is_grad_enabled() or isinstance(self.padding, str):
            # inference (cached weights), or 'same'/'valid' padding
            if act is not None:
                x = act(x, self._backend)
            x = x if pads is None else F.pad(x, pads)
            return self._conv_forward(x, self.binary_weight(), self.bias)
        return _BinaryConv2dFunction.apply(x, self.weight, self.bias, self,
                                           act, wbin, self._backend)

    def extra_repr(self) -> str:
        backend = '' if self._backend == 'auto' else \
            f', backend={self._backend!r}'
        padding = '' if self.input_padding == SYMMETRIC else \
            f', input_padding={self.input_padding!r}'
        return (super().extra_repr() + padding +
                f', act_binarizer={self.act_binarizer!r}'
                f', weight_binarizer={self.weight_binarizer!r}' + backend)


def binary_convs(model: nn.Module) -> List[Tuple[str, BinaryConv2d]]:
    """``(name, conv)`` of every :class:`BinaryConv2d` in ``model``, in
    module order; ask each :attr:`~BinaryConv2d.binarizes_input` /
    :attr:`~BinaryConv2d.binarizes_weight` what it binarizes."""
    return [(name, m) for name, m in model.named_modules()
            if isinstance(m, BinaryConv2d)]
