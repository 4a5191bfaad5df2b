"""Binarizers: small registered classes, each a 1-bit forward with its own
surrogate gradient and the facts other code asks for.

A 1-bit value cannot encode zero, so ``sign(0) = +1`` throughout. Every
binarizer is registered in :data:`mmbireal.registry.BINARIZERS` and named
in configs by string or dict, the string being the class name in
snake_case: ``act_binarizer='approx_sign'`` is
``act_binarizer=dict(type='ApproxSign')`` (see :func:`build_binarizer`).

Activation binarizers (``x`` is the real-valued input of a binary conv):

* ``approx_sign`` -- Bi-Real Net's ApproxSign: the derivative of a piecewise
  quadratic, ``2 + 2x`` on ``[-1, 0)``, ``2 - 2x`` on ``[0, 1)``, else 0.
* ``ste`` -- the straight-through estimator: 1 on ``|x| <= 1``, else 0.

Weight binarizers (``w`` is the real-valued latent weight, shape
``(C_out, C_in, kh, kw)``; ``alpha = mean|w|`` per output channel):

* ``magnitude_aware`` -- forward ``alpha * sign(w)``; backward the paper's
  magnitude-aware gradient ``alpha * 1[|w| < 1] * g``.
* ``scaled_sign`` -- forward ``alpha * sign(w)`` with ``alpha`` detached;
  backward ``1[|w| <= 1] * g`` (the authors' PyTorch release).
* ``sign`` -- forward exactly ``+-1``; backward ``1[|w| <= 1] * g``.

A binarizer's formulas are written once, in the operations of
:class:`~mmbireal.models.binarize_kernels.BinarizeOps`; the caller picks the
backend (PyTorch ops or the one-pass CPU kernels) once per call. Adding a
binarizer is one class, anywhere:

Example:
    >>> import torch
    >>> from mmbireal.models import ActBinarizer, BinaryConv2d
    >>> from mmbireal.registry import BINARIZERS
    >>> @BINARIZERS.register_module()
    ... class WideSte(ActBinarizer):
    ...     '''Straight-through on |x| <= 2.'''
    ...     def surrogate_grad(self, x, out=None):
    ...         return torch.abs(x, out=out).le_(2)
    >>> conv = BinaryConv2d(4, 4, 3, padding=1, act_binarizer='wide_ste')
    >>> conv.act_binarizer
    'wide_ste'
"""
import re
from typing import ClassVar, Dict, List, Optional, Type, Union

import torch
from torch import Tensor

from mmbireal.registry import BINARIZERS
from mmbireal.utils.errors import InputError

from .binarize_kernels import BinarizeOps, WeightAndScale, binarize_ops


def _snake_case(name: str) -> str:
    """``ApproxSign`` -> ``approx_sign``, ``STE`` -> ``ste``."""
    name = re.sub(r'([A-Z]+)([A-Z][a-z])', r'\1_\2', name)
    return re.sub(r'([a-z0-9])([A-Z])', r'\1_\2', name).lower()


class Binarizer:
    """Base of the binarizers: a 1-bit forward with a surrogate gradient.

    Binarizers hold no tensors; one instance may serve any number of
    layers. Subclass :class:`ActBinarizer` or :class:`WeightBinarizer`.

    Attributes:
        name (str): The config name; the class name in snake_case unless
            the class sets it.
        kind (str): ``'activation'`` or ``'weight'``.
        bits (int): Bits per binarized value at inference (1), e.g. for
            the memory of :func:`mmbireal.analysis.memory_bits`.
    """

    name: ClassVar[str]
    kind: ClassVar[str]
    bits: ClassVar[int] = 1

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if 'name' not in cls.__dict__:
            cls.name = _snake_case(cls.__name__)

    def __repr__(self) -> str:
        return f'{type(self).__name__}()'


class ActBinarizer(Binarizer):
    """An activation binarizer: ``sign(x)`` forward, ``grad * s'(x)``
    backward for a surrogate derivative ``s'``.

    A subclass defines :meth:`surrogate_grad` as PyTorch ops. Its
    ``native_code`` names the kernel of ``mmb_mul_surrogate_grad`` in
    ``csrc/binarize.cpp`` that computes the same formula in one pass
    (None, the default: PyTorch ops on every backend).

    Calling the binarizer, ``binarizer(x, backend='auto')``, binarizes a
    tensor with autograd support.
    """

    kind = 'activation'
    native_code: ClassVar[Optional[int]] = None

    def surrogate_grad(self, x: Tensor, out: Optional[Tensor] = None
                       ) -> Tensor:
        """The surrogate derivative ``s'(x)`` as PyTorch ops, into ``out``
        (shaped like ``x``, not ``x``) if given."""
        raise NotImplementedError

    def binarize(self, x: Tensor, ops: BinarizeOps,
                 out: Optional[Tensor] = None) -> Tensor:
        """The forward: ``sign(x)``, with ``sign(0) = +1``."""
        return ops.sign(x, out)

    def mul_surrogate_grad(self, x: Tensor, grad: Tensor, ops: BinarizeOps,
                           out: Optional[Tensor] = None,
                           scratch: Optional[Tensor] = None) -> Tensor:
        """The backward: ``grad * s'(x)`` (see
        :meth:`BinarizeOps.mul_surrogate_grad`)."""
        return ops.mul_surrogate_grad(x, grad, self, out, scratch)

    def __call__(self, x: Tensor, backend: str = 'auto') -> Tensor:
        return _SignWithSurrogate.apply(x, self, backend)


class WeightBinarizer(Binarizer):
    """A weight binarizer: ``sign(w)``, per output channel times ``alpha =
    mean |w|`` if ``scaled``; backward the gradient where ``|w|`` is under
    the clip, times ``alpha`` if ``scaled_grad``.

    A subclass sets the facts below; the formulas (and the kernels) follow
    from them. One with other formulas overrides :meth:`binarize` and
    :meth:`weight_grad_`.

    Attributes:
        scaled (bool): Forward ``alpha * sign(w)`` instead of ``sign(w)``;
            the packed export folds ``alpha`` into the BN.
        scaled_grad (bool): Multiply the gradient by ``alpha``.
        strict_clip (bool): Pass the gradient where ``|w| < 1`` instead of
            ``|w| <= 1``.
    """

    kind = 'weight'
    scaled: ClassVar[bool] = False
    scaled_grad: ClassVar[bool] = False
    strict_clip: ClassVar[bool] = False

    def binarize(self, w: Tensor, ops: BinarizeOps,
                 out: Optional[Tensor] = None,
                 alpha: Optional[Tensor] = None) -> WeightAndScale:
        """The forward: ``(w_b, alpha)`` (see
        :meth:`BinarizeOps.binarize_weight`)."""
        return ops.binarize_weight(w, self, out, alpha)

    def weight_grad_(self, w: Tensor, grad: Tensor, ops: BinarizeOps,
                     alpha: Optional[Tensor] = None,
                     out: Optional[Tensor] = None) -> Tensor:
        """The backward, overwriting ``grad`` (see
        :meth:`BinarizeOps.weight_grad_`)."""
        return ops.weight_grad_(w, grad, self, alpha, out)

    def __call__(self, w: Tensor, backend: str = 'auto') -> Tensor:
        return _WeightBinarizer.apply(w, self, backend)


@BINARIZERS.register_module()
class ApproxSign(ActBinarizer):
    """Sign with Bi-Real Net's ApproxSign gradient, ``2 - 2|x|`` on
    ``(-1, 1)``, else 0.

    Example:
        >>> import torch
        >>> x = torch.tensor([-1.5, -0.5, 0.0, 0.75], requires_grad=True)
        >>> y = BINARIZERS.build(dict(type='ApproxSign'))(x)
        >>> y.tolist()
        [-1.0, -1.0, 1.0, 1.0]
        >>> y.sum().backward()
        >>> x.grad.tolist()
        [0.0, 1.0, 2.0, 0.5]
    """

    native_code = 0

    def surrogate_grad(self, x: Tensor, out: Optional[Tensor] = None
                       ) -> Tensor:
        # 2 - 2|x| covers both polynomial pieces; clamp zeroes |x| >= 1.
        # Only in-place scalar ops after abs: an out-of-place rsub with
        # alpha is ~10x slower on CPU.
        return torch.abs(x, out=out).mul_(-2).add_(2).clamp_(min=0)


@BINARIZERS.register_module()
class STE(ActBinarizer):
    """Sign with the straight-through estimator: 1 on ``|x| <= 1``.

    Example:
        >>> from mmbireal.models import BinaryConv2d
        >>> BinaryConv2d(8, 8, 3, padding=1, act_binarizer='ste').act_binarizer
        'ste'
    """

    native_code = 1

    def surrogate_grad(self, x: Tensor, out: Optional[Tensor] = None
                       ) -> Tensor:
        return torch.abs(x, out=out).le_(1)


@BINARIZERS.register_module()
class MagnitudeAware(WeightBinarizer):
    """``alpha * sign(w)`` with the paper's magnitude-aware gradient.

    Example:
        >>> import torch
        >>> w = torch.tensor([[0.5, -0.25], [2.0, -4.0]])
        >>> build_binarizer('magnitude_aware', 'weight')(w).tolist()  # per row
        [[0.375, -0.375], [3.0, -3.0]]
    """

    scaled, scaled_grad, strict_clip = True, True, True


@BINARIZERS.register_module()
class ScaledSign(WeightBinarizer):
    """``alpha * sign(w)``, alpha detached, clipped straight-through grad.

    Example:
        >>> conv_cfg = dict(type='BinaryConv2d', act_binarizer='approx_sign',
        ...                 weight_binarizer='scaled_sign')
    """

    scaled = True


@BINARIZERS.register_module()
class Sign(WeightBinarizer):
    """Exactly ``+-1`` weights with a clipped straight-through gradient.

    Example:
        >>> import torch
        >>> sign = build_binarizer('sign', 'weight')
        >>> sign(torch.tensor([0.3, -2.0, 0.0])).tolist()
        [1.0, -1.0, 1.0]
    """


def sign_nonzero(x: Tensor, out: Optional[Tensor] = None) -> Tensor:
    """``sign`` with ``sign(0) = +1`` (also for -0.0), in the dtype of
    ``x``, into ``out`` if given (no autograd)."""
    return binarize_ops('auto', x, out).sign(x, out)


class _SignWithSurrogate(torch.autograd.Function):
    """An activation binarizer's forward and backward."""

    @staticmethod
    def forward(ctx, x: Tensor, binarizer: ActBinarizer,
                backend: str) -> Tensor:
        ctx.save_for_backward(x)
        ctx.binarizer, ctx.backend = binarizer, backend
        return binarizer.binarize(x, binarize_ops(backend, x))

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, = ctx.saved_tensors
        ops = binarize_ops(ctx.backend, x, grad)
        return ctx.binarizer.mul_surrogate_grad(x, grad, ops), None, None


class _WeightBinarizer(torch.autograd.Function):
    """A weight binarizer's forward and backward."""

    @staticmethod
    def forward(ctx, w: Tensor, binarizer: WeightBinarizer,
                backend: str) -> Tensor:
        w_b, alpha = binarizer.binarize(w, binarize_ops(backend, w))
        ctx.save_for_backward(w, alpha)
        ctx.binarizer, ctx.backend = binarizer, backend
        return w_b

    @staticmethod
    def backward(ctx, grad: Tensor):
        w, alpha = ctx.saved_tensors
        grad = grad.clone()  # weight_grad_ overwrites it; it is not ours
        ops = binarize_ops(ctx.backend, w, grad, scale=alpha)
        return ctx.binarizer.weight_grad_(w, grad, ops, alpha), None, None


BinarizerConfig = Union[None, str, dict, Binarizer]
_BASES: Dict[str, Type[Binarizer]] = {
    base.kind: base
    for base in (ActBinarizer, WeightBinarizer)
}


def registered_binarizers(kind: str) -> List[Type[Binarizer]]:
    """The registered binarizer classes of one kind (``'activation'`` or
    ``'weight'``), by name."""
    return sorted((cls for cls in BINARIZERS.module_dict.values()
                   if issubclass(cls, _BASES[kind])),
                  key=lambda cls: cls.name)


def build_binarizer(cfg: BinarizerConfig,
                    kind: str) -> Optional[Binarizer]:
    """The binarizer of a config, as larq's ``quantizers.get``.

    Args:
        cfg (str | dict | Binarizer, optional): A registered name
            (``'approx_sign'``), a dict with a registered ``type``
            (``dict(type='ApproxSign')``, other keys go to the class), a
            binarizer (returned as it is) or None (no binarizer: None).
        kind (str): ``'activation'`` or ``'weight'``.

    Returns:
        Binarizer, optional: The binarizer, or None.

    Raises:
        InputError: an unknown name or type, or one of the other kind.
    """
    if cfg is None:
        return None
    base = _BASES[kind]
    if isinstance(cfg, base):
        return cfg
    classes = registered_binarizers(kind)
    args: dict = {}
    if isinstance(cfg, dict):
        args = dict(cfg)
        key = args.pop('type', None)
        cls = key if isinstance(key, type) else (
            BINARIZERS.get(key) if isinstance(key, str) else None)
        if not (isinstance(cls, type) and issubclass(cls, base)):
            accepted = ', '.join(repr(c.__name__) for c in classes)
            raise InputError(f'unknown {kind} binarizer type {key!r}; '
                             f'accepted: {accepted}')
    else:
        cls = next((c for c in classes if c.name == cfg), None)
        if cls is None:
            accepted = ', '.join([repr(c.name) for c in classes] + ['None'])
            raise InputError(f'unknown {kind} binarizer {cfg!r}; accepted: '
                             f'{accepted}')
    try:
        return cls(**args)
    except TypeError as e:
        raise InputError(f'{kind} binarizer {cfg!r}: {e}') from None
