"""Binarizers: small named functions with a custom gradient, chosen by name.

Every binarizer maps a real tensor to a 1-bit one in the forward pass and
defines its own surrogate gradient for the backward pass. A 1-bit value
cannot encode zero, so ``sign(0) = +1`` throughout.

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
"""
from typing import Callable, Dict, NamedTuple, Optional, Tuple

import torch
from torch import Tensor

from mmbireal.utils.errors import InputError

from .binarize_kernels import kernels_for

Binarizer = Callable[[Tensor], Tensor]


def sign_nonzero(x: Tensor, out: Optional[Tensor] = None) -> Tensor:
    """``sign`` with ``sign(0) = +1`` (also for -0.0), in the dtype of ``x``,
    into ``out`` if given.

    Without the one-pass kernel: sign(x) + 0.5 is in {-0.5, 0.5, 1.5}, so
    its sign is +-1 with 0 -> +1; three vectorised passes are ~8x faster on
    CPU than ``torch.where(x >= 0, 1., -1.)``.
    """
    kernels = _kernels_for(x, out)
    if kernels is not None:
        return kernels.sign(x, out)
    return torch.sign(x, out=out).add_(0.5).sign_()


def channel_scale(w: Tensor, out: Optional[Tensor] = None) -> Tensor:
    """Per-output-channel scale ``mean(|w|)`` over all but the first dim.

    ``out`` (shaped like ``w``) takes ``|w|`` if given, saving an
    allocation.
    """
    return torch.abs(w, out=out).mean(
        dim=tuple(range(1, w.dim())), keepdim=True)


def approx_sign_grad(x: Tensor, out: Optional[Tensor] = None) -> Tensor:
    """ApproxSign's derivative: ``2 - 2|x|`` on ``(-1, 1)``, else 0.

    ``out`` (same shape as ``x``) receives the result if given, which saves
    an allocation; it may not be ``x`` itself.
    """
    # 2 - 2|x| covers both polynomial pieces; clamp zeroes |x| >= 1. Only
    # in-place scalar ops after abs: an out-of-place rsub with alpha is ~10x
    # slower on CPU.
    return torch.abs(x, out=out).mul_(-2).add_(2).clamp_(min=0)


def ste_grad(x: Tensor, out: Optional[Tensor] = None) -> Tensor:
    """The straight-through estimator's derivative: 1 on ``|x| <= 1``.

    ``out`` as for :func:`approx_sign_grad`.
    """
    return torch.abs(x, out=out).le_(1)


def mul_surrogate_grad(name: str, x: Tensor, grad: Tensor,
                       out: Optional[Tensor] = None,
                       scratch: Optional[Tensor] = None) -> Tensor:
    """``grad * d sign(x) / dx`` under the surrogate gradient of activation
    binarizer ``name`` (see :data:`ACT_SURROGATE_GRADS`).

    ``out`` receives the result if given (it may be ``grad``); ``scratch``
    (shaped like ``x``, not ``x``) spares the PyTorch path an allocation.
    """
    kernels = _kernels_for(x, grad, out)
    if kernels is not None:
        return kernels.mul_surrogate_grad(x, grad, name, out)
    return torch.mul(grad, ACT_SURROGATE_GRADS[name](x, out=scratch),
                     out=out)


class _SignWithSurrogate(torch.autograd.Function):
    """sign(x) forward; :func:`mul_surrogate_grad` backward."""

    @staticmethod
    def forward(ctx, x: Tensor, name: str) -> Tensor:
        ctx.save_for_backward(x)
        ctx.name = name
        return sign_nonzero(x)

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, = ctx.saved_tensors
        return mul_surrogate_grad(ctx.name, x, grad), None


class WeightBinarizerSpec(NamedTuple):
    """What a weight binarizer does, for the shared implementation below.

    Attributes:
        scaled (bool): Forward ``alpha * sign(w)`` instead of ``sign(w)``.
        scaled_grad (bool): Multiply the gradient by ``alpha``.
        strict_clip (bool): Pass the gradient where ``|w| < 1`` instead of
            ``|w| <= 1``.
    """
    scaled: bool
    scaled_grad: bool
    strict_clip: bool


# The weight binarizers; also used by BinaryConv2d's fused function.
WEIGHT_BINARIZER_SPECS: Dict[str, WeightBinarizerSpec] = {
    'magnitude_aware': WeightBinarizerSpec(True, True, True),
    'scaled_sign': WeightBinarizerSpec(True, False, False),
    'sign': WeightBinarizerSpec(False, False, False),
}


# Layer-4 weights are as large as layer-4 activations, and a fresh
# weight-sized tensor costs more in page faults than a pass over it, so the
# two functions below share alpha and write into caller-owned tensors.
def binarize_weight(w: Tensor, spec: WeightBinarizerSpec,
                    out: Optional[Tensor] = None,
                    alpha: Optional[Tensor] = None
                    ) -> Tuple[Tensor, Optional[Tensor]]:
    """``(w_b, alpha)``: the binarized weight (in ``out`` if given) and the
    per-channel scale (None if the binarizer needs none; computed unless
    given)."""
    need_alpha = spec.scaled or spec.scaled_grad
    kernels = _kernels_for(w, out)
    if kernels is not None and (alpha is None or _is_scale_of(alpha, w)):
        compute = need_alpha and alpha is None
        if compute:
            alpha = w.new_empty((w.shape[0], ) + (1, ) * (w.dim() - 1))
        w_b = kernels.binarize_weight(w, spec.scaled, alpha, compute, out)
        return w_b, (alpha if need_alpha else None)
    if need_alpha and alpha is None:
        out = torch.empty_like(w) if out is None else out
        alpha = channel_scale(w, out=out)  # |w| in out, then sign(w)
    w_b = sign_nonzero(w, out=out)
    return (w_b.mul_(alpha) if spec.scaled else w_b), alpha


def weight_grad(w: Tensor, grad: Tensor, spec: WeightBinarizerSpec,
                alpha: Optional[Tensor] = None,
                out: Optional[Tensor] = None) -> Tensor:
    """The weight gradient: ``grad`` where ``|w|`` is under the clip (times
    ``alpha`` if ``spec.scaled_grad``; the derivative of alpha itself is
    ignored). Overwrites ``grad``; ``out`` is an optional scratch tensor."""
    if spec.scaled_grad and alpha is None:
        alpha = channel_scale(w)
    alpha = alpha if spec.scaled_grad else None
    kernels = _kernels_for(w, grad)
    if kernels is not None and (alpha is None or _is_scale_of(alpha, w)):
        return kernels.weight_grad_(w, grad, alpha, spec.strict_clip)
    mask = torch.abs(w, out=out)
    mask = mask.lt_(1) if spec.strict_clip else mask.le_(1)
    if alpha is not None:
        mask.mul_(alpha)
    return grad.mul_(mask)


def _kernels_for(*tensors: Optional[Tensor]):
    """The one-pass CPU kernels if they accept these tensors, else None."""
    return kernels_for(*(t for t in tensors if t is not None))


def _is_scale_of(alpha: Tensor, w: Tensor) -> bool:
    """Whether the kernels can read ``alpha`` as ``w``'s per-channel
    scale."""
    return alpha.dtype == torch.float32 and alpha.is_contiguous() and \
        alpha.numel() == w.shape[0] and alpha.device == w.device


class _WeightBinarizer(torch.autograd.Function):
    """:func:`binarize_weight` forward, :func:`weight_grad` backward."""

    @staticmethod
    def forward(ctx, w: Tensor, spec: WeightBinarizerSpec) -> Tensor:
        w_b, alpha = binarize_weight(w, spec)
        ctx.save_for_backward(w, alpha)
        ctx.spec = spec
        return w_b

    @staticmethod
    def backward(ctx, grad: Tensor):
        w, alpha = ctx.saved_tensors
        # weight_grad overwrites its input; grad is not ours
        return weight_grad(w, grad.clone(), ctx.spec, alpha), None


def approx_sign(x: Tensor) -> Tensor:
    """Sign with Bi-Real Net's ApproxSign gradient."""
    return _SignWithSurrogate.apply(x, 'approx_sign')


def ste(x: Tensor) -> Tensor:
    """Sign with the straight-through estimator (1 on ``|x| <= 1``)."""
    return _SignWithSurrogate.apply(x, 'ste')


def magnitude_aware(w: Tensor) -> Tensor:
    """``alpha * sign(w)`` with the paper's magnitude-aware gradient."""
    return _WeightBinarizer.apply(w, WEIGHT_BINARIZER_SPECS['magnitude_aware'])


def scaled_sign(w: Tensor) -> Tensor:
    """``alpha * sign(w)``, alpha detached, clipped straight-through grad."""
    return _WeightBinarizer.apply(w, WEIGHT_BINARIZER_SPECS['scaled_sign'])


def sign(w: Tensor) -> Tensor:
    """Exactly ``+-1`` weights with a clipped straight-through gradient."""
    return _WeightBinarizer.apply(w, WEIGHT_BINARIZER_SPECS['sign'])


ACT_BINARIZERS: Dict[str, Binarizer] = {
    'approx_sign': approx_sign,
    'ste': ste,
}
# their surrogate derivatives ``(x, out=None) -> Tensor`` as PyTorch ops (see
# mul_surrogate_grad)
ACT_SURROGATE_GRADS: Dict[str, Callable[..., Tensor]] = {
    'approx_sign': approx_sign_grad,
    'ste': ste_grad,
}

WEIGHT_BINARIZERS: Dict[str, Binarizer] = {
    'magnitude_aware': magnitude_aware,
    'scaled_sign': scaled_sign,
    'sign': sign,
}


def _lookup(table: Dict[str, Binarizer], kind: str,
            name: Optional[str]) -> Optional[Binarizer]:
    if name is None:
        return None
    if name not in table:
        accepted = ', '.join([repr(k) for k in table] + ['None'])
        raise InputError(
            f'unknown {kind} binarizer {name!r}; accepted: {accepted}')
    return table[name]


def get_act_binarizer(name: Optional[str]) -> Optional[Binarizer]:
    """Return the activation binarizer called ``name`` (None: identity)."""
    return _lookup(ACT_BINARIZERS, 'activation', name)


def get_weight_binarizer(name: Optional[str]) -> Optional[Binarizer]:
    """Return the weight binarizer called ``name`` (None: real weights)."""
    return _lookup(WEIGHT_BINARIZERS, 'weight', name)
