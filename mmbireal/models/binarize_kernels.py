"""The binarizers' element-wise operations on two backends, one interface.

A binarizer (:mod:`mmbireal.models.binarizers`) writes its formulas once,
in the four operations of :class:`BinarizeOps`, and is handed the backend
that runs them:

* :class:`TorchBinarizeOps` -- PyTorch ops: any device, dtype and layout;
* :class:`NativeBinarizeOps` -- one-pass CPU kernels (``csrc/binarize.cpp``).
  On the CPU every element-wise op is a pass over memory, and the formulas
  as PyTorch ops take three to five passes each (the sign alone is three).
  The kernels evaluate the same formulas in one pass, with the same float32
  roundings.

:func:`binarize_ops` chooses once per call: the kernels unless the backend
is ``'torch'`` or :func:`kernels_for` refuses the tensors (anything but
float32 CPU tensors, dense in memory, laid out alike and not tracked by
autograd: CUDA, float64, bfloat16, strided views). Without a C++ compiler
(after one warning) or with ``MMBIREAL_TRAIN_KERNELS=torch`` every backend
runs PyTorch ops.

The library is built on first use, like the deployment engine (see
:mod:`mmbireal.utils.native`).
"""
import ctypes
import functools
import os.path as osp
from typing import TYPE_CHECKING, Callable, List, Optional, Tuple, TypeVar

import torch
from torch import Tensor

from mmbireal.utils import native

if TYPE_CHECKING:  # the binarizers import this module
    from .binarizers import ActBinarizer, WeightBinarizer

ABI_VERSION = 2
SOURCE = osp.join(osp.dirname(osp.abspath(__file__)), 'csrc', 'binarize.cpp')
#: The accepted ``backend`` arguments (as the deployment engine's).
BACKENDS = native.BACKENDS

_c_ptr = ctypes.c_void_p
_c_i64 = ctypes.c_int64
_c_int = ctypes.c_int

F = TypeVar('F', bound=Callable)
WeightAndScale = Tuple[Tensor, Optional[Tensor]]


def channel_scale(w: Tensor, out: Optional[Tensor] = None) -> Tensor:
    """Per-output-channel scale ``mean(|w|)`` over all but the first dim.

    ``out`` (shaped like ``w``) takes ``|w|`` if given, saving an
    allocation.
    """
    return torch.abs(w, out=out).mean(
        dim=tuple(range(1, w.dim())), keepdim=True)


class BinarizeOps:
    """What a binarizer's formulas are written in; one backend each.

    Both backends give the same bits (but for the per-channel
    ``mean |w|``, summed in a different order). ``out`` arguments receive
    the result (saving an allocation); ``scratch`` is memory the PyTorch
    path may use. Weight binarizers are described by their facts
    (``scaled``, ``scaled_grad``, ``strict_clip``; see
    :class:`~mmbireal.models.binarizers.WeightBinarizer`).
    """

    name = ''

    def sign(self, x: Tensor, out: Optional[Tensor] = None) -> Tensor:
        """``sign(x)`` with ``sign(0) = +1`` (also for -0.0)."""
        raise NotImplementedError

    def mul_surrogate_grad(self, x: Tensor, grad: Tensor,
                           binarizer: 'ActBinarizer',
                           out: Optional[Tensor] = None,
                           scratch: Optional[Tensor] = None) -> Tensor:
        """``grad * d sign(x) / dx`` under ``binarizer``'s surrogate
        (``out`` may be ``grad``; ``scratch`` shaped like ``x``, not
        ``x``)."""
        raise NotImplementedError

    def binarize_weight(self, w: Tensor, binarizer: 'WeightBinarizer',
                        out: Optional[Tensor] = None,
                        alpha: Optional[Tensor] = None) -> WeightAndScale:
        """``(w_b, alpha)``: ``sign(w)``, times ``alpha`` if the binarizer
        is scaled; ``alpha`` is the per-channel ``mean |w|`` (computed
        unless given; None if the binarizer needs none)."""
        raise NotImplementedError

    def weight_grad_(self, w: Tensor, grad: Tensor,
                     binarizer: 'WeightBinarizer',
                     alpha: Optional[Tensor] = None,
                     out: Optional[Tensor] = None) -> Tensor:
        """``grad *= 1[|w| under the clip]`` (times ``alpha`` if the
        gradient is scaled; the derivative of alpha itself is ignored).
        ``out`` is scratch memory shaped like ``w``."""
        raise NotImplementedError

    @staticmethod
    def _grad_scale(w: Tensor, binarizer: 'WeightBinarizer',
                    alpha: Optional[Tensor]) -> Optional[Tensor]:
        """The ``alpha`` the weight gradient is multiplied by, or None."""
        if not binarizer.scaled_grad:
            return None
        return channel_scale(w) if alpha is None else alpha


class TorchBinarizeOps(BinarizeOps):
    """:class:`BinarizeOps` as PyTorch ops (any device, dtype, layout)."""

    name = 'torch'

    def sign(self, x: Tensor, out: Optional[Tensor] = None) -> Tensor:
        # sign(x) + 0.5 is in {-0.5, 0.5, 1.5}, so its sign is +-1 with
        # 0 -> +1; three vectorised passes are ~8x faster on CPU than
        # torch.where(x >= 0, 1., -1.).
        return torch.sign(x, out=out).add_(0.5).sign_()

    def mul_surrogate_grad(self, x: Tensor, grad: Tensor,
                           binarizer: 'ActBinarizer',
                           out: Optional[Tensor] = None,
                           scratch: Optional[Tensor] = None) -> Tensor:
        return torch.mul(grad, binarizer.surrogate_grad(x, out=scratch),
                         out=out)

    def binarize_weight(self, w: Tensor, binarizer: 'WeightBinarizer',
                        out: Optional[Tensor] = None,
                        alpha: Optional[Tensor] = None) -> WeightAndScale:
        if alpha is None and (binarizer.scaled or binarizer.scaled_grad):
            out = torch.empty_like(w) if out is None else out
            alpha = channel_scale(w, out=out)  # |w| in out, then sign(w)
        w_b = self.sign(w, out=out)
        return (w_b.mul_(alpha) if binarizer.scaled else w_b), alpha

    def weight_grad_(self, w: Tensor, grad: Tensor,
                     binarizer: 'WeightBinarizer',
                     alpha: Optional[Tensor] = None,
                     out: Optional[Tensor] = None) -> Tensor:
        alpha = self._grad_scale(w, binarizer, alpha)
        mask = torch.abs(w, out=out)
        mask = mask.lt_(1) if binarizer.strict_clip else mask.le_(1)
        if alpha is not None:
            mask.mul_(alpha)
        return grad.mul_(mask)


TORCH_OPS = TorchBinarizeOps()


def _profiled(method: F) -> F:
    """Label the kernel in ``torch.profiler`` tables (``mmbireal::<name>``):
    a ctypes call is otherwise counted as its caller's own time."""
    label = f'mmbireal::{method.__name__.rstrip("_")}'

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        with torch.profiler.record_function(label):
            return method(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


class NativeBinarizeOps(BinarizeOps):
    """:class:`BinarizeOps` as the compiled kernels (ctypes binding).

    Only for tensors :func:`kernels_for` accepts. The methods write through
    raw pointers, which autograd's version counters do not see: they only
    write into tensors the caller owns. An activation binarizer without a
    ``native_code`` has its surrogate gradient run as PyTorch ops.
    """

    name = 'native'

    def __init__(self, lib: ctypes.CDLL, path: str,
                 flags: List[str]) -> None:
        for name, restype, args in (
            ('mmb_sign', None, [_c_ptr, _c_ptr, _c_i64, _c_int]),
            ('mmb_mul_surrogate_grad', _c_int,
             [_c_ptr, _c_ptr, _c_ptr, _c_i64, _c_int, _c_int]),
            ('mmb_binarize_weight', None, [_c_ptr, _c_i64, _c_i64, _c_ptr,
                                           _c_int, _c_int, _c_ptr, _c_int]),
            ('mmb_weight_grad', None, [_c_ptr, _c_ptr, _c_ptr, _c_i64,
                                       _c_i64, _c_int, _c_int]),
        ):
            fn = getattr(lib, name)
            fn.restype, fn.argtypes = restype, args
        self.lib, self.path, self.flags = lib, path, flags

    @_profiled
    def sign(self, x: Tensor, out: Optional[Tensor] = None) -> Tensor:
        out = torch.empty_like(x) if out is None else out
        self.lib.mmb_sign(x.data_ptr(), out.data_ptr(), x.numel(),
                          torch.get_num_threads())
        return out

    @_profiled
    def mul_surrogate_grad(self, x: Tensor, grad: Tensor,
                           binarizer: 'ActBinarizer',
                           out: Optional[Tensor] = None,
                           scratch: Optional[Tensor] = None) -> Tensor:
        code = binarizer.native_code
        if code is None:
            return TORCH_OPS.mul_surrogate_grad(x, grad, binarizer, out,
                                                scratch)
        out = torch.empty_like(grad) if out is None else out
        if self.lib.mmb_mul_surrogate_grad(x.data_ptr(), grad.data_ptr(),
                                           out.data_ptr(), x.numel(), code,
                                           torch.get_num_threads()):
            raise ValueError(f'{type(binarizer).__name__}.native_code='
                             f'{code!r}: no such kernel in {SOURCE}')
        return out

    @_profiled
    def binarize_weight(self, w: Tensor, binarizer: 'WeightBinarizer',
                        out: Optional[Tensor] = None,
                        alpha: Optional[Tensor] = None) -> WeightAndScale:
        need_alpha = binarizer.scaled or binarizer.scaled_grad
        compute_alpha = need_alpha and alpha is None
        if compute_alpha:
            alpha = w.new_empty((w.shape[0], ) + (1, ) * (w.dim() - 1))
        out = torch.empty_like(w) if out is None else out
        rows = w.shape[0]
        self.lib.mmb_binarize_weight(
            w.data_ptr(), rows, w.numel() // max(rows, 1),
            None if alpha is None else alpha.data_ptr(), int(compute_alpha),
            int(binarizer.scaled), out.data_ptr(), torch.get_num_threads())
        return out, (alpha if need_alpha else None)

    @_profiled
    def weight_grad_(self, w: Tensor, grad: Tensor,
                     binarizer: 'WeightBinarizer',
                     alpha: Optional[Tensor] = None,
                     out: Optional[Tensor] = None) -> Tensor:
        alpha = self._grad_scale(w, binarizer, alpha)
        rows = w.shape[0]
        self.lib.mmb_weight_grad(
            w.data_ptr(), grad.data_ptr(),
            None if alpha is None else alpha.data_ptr(), rows,
            w.numel() // max(rows, 1), int(binarizer.strict_clip),
            torch.get_num_threads())
        return grad


def build_kernels(cxx: Optional[str] = None,
                  directory: Optional[str] = None) -> NativeBinarizeOps:
    """Compile (or reuse) the kernels and load them.

    Raises:
        mmbireal.utils.native.NativeBuildError: no compiler, a failed build
            or a library that does not load.
    """
    lib, path, flags = native.build_library(
        SOURCE, ABI_VERSION, directory or native.cache_dir('kernels'), cxx)
    return NativeBinarizeOps(lib, path, flags)


_kernels = native.LazyLibrary(
    lambda: build_kernels(), 'MMBIREAL_TRAIN_KERNELS',
    'mmbireal: one-pass binarization kernels',
    'binarizing with PyTorch ops (same results, slower on the CPU)')


def _dense(t: Tensor) -> bool:
    return t.is_contiguous() or (t.dim() == 4 and t.is_contiguous(
        memory_format=torch.channels_last))


def kernels_for(*tensors: Tensor) -> Optional[NativeBinarizeOps]:
    """The kernels if they may run on ``tensors``, else None.

    They may if every tensor is a float32 CPU tensor, dense in memory, of
    the first one's shape and strides (so element ``i`` of one sits at
    offset ``i`` of every other), and none needs autograd to record the
    op. The library is built on the first call that gets this far.
    """
    first = tensors[0]
    if first.device.type != 'cpu' or not _dense(first):
        return None
    grad_mode = torch.is_grad_enabled()
    for t in tensors:
        if t.dtype != torch.float32 or t.device.type != 'cpu' or \
                t.shape != first.shape or t.stride() != first.stride() or \
                (grad_mode and t.requires_grad):
            return None
    return _kernels.get()


def _is_scale_of(alpha: Tensor, w: Tensor) -> bool:
    """Whether the kernels can read ``alpha`` as ``w``'s per-channel
    scale."""
    return alpha.dtype == torch.float32 and alpha.is_contiguous() and \
        alpha.numel() == w.shape[0] and alpha.device == w.device


def binarize_ops(backend: str, *tensors: Optional[Tensor],
                 scale: Optional[Tensor] = None) -> BinarizeOps:
    """The backend to run one binarizer operation on ``tensors`` (None
    entries ignored; the first is the operand, ``scale`` its per-channel
    alpha if given): the kernels unless ``backend`` is ``'torch'`` or they
    do not accept the tensors (see :func:`kernels_for`)."""
    if backend != 'torch':
        kernels = kernels_for(*[t for t in tensors if t is not None])
        if kernels is not None and (scale is None
                                    or _is_scale_of(scale, tensors[0])):
            return kernels
    return TORCH_OPS


def check_backend(backend: str) -> str:
    """:func:`mmbireal.utils.native.check_backend` for the one-pass
    binarization kernels (``MMBIREAL_TRAIN_KERNELS=torch`` overrides)."""
    return native.check_backend(backend, _kernels)
