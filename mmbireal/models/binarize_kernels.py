"""One-pass CPU kernels for the binarizers (``csrc/binarize.cpp``).

On the CPU every element-wise op is a pass over memory, and the binarizers'
formulas written as PyTorch ops take three to five passes each (the sign
alone is three: see :func:`mmbireal.models.binarizers.sign_nonzero`). These
kernels evaluate the same formulas in one pass, with the same float32
roundings, and are used by :mod:`mmbireal.models.binarizers` whenever
:func:`kernels_for` accepts the tensors: float32 on the CPU, dense in
memory, laid out alike, and not tracked by autograd. Anything else (CUDA,
float64, bfloat16, strided views) takes the PyTorch ops, which is also
what happens, after one warning, where no C++ compiler is found, or with
``MMBIREAL_TRAIN_KERNELS=torch``.

The library is built on first use, like the deployment engine (see
:mod:`mmbireal.utils.native`).
"""
import ctypes
import functools
import os.path as osp
from typing import Callable, List, Optional, TypeVar

import torch
from torch import Tensor

from mmbireal.utils import native

ABI_VERSION = 1
SOURCE = osp.join(osp.dirname(osp.abspath(__file__)), 'csrc', 'binarize.cpp')
# the kind codes of mmb_mul_surrogate_grad
SURROGATE_KINDS = {'approx_sign': 0, 'ste': 1}

_c_ptr = ctypes.c_void_p
_c_i64 = ctypes.c_int64
_c_int = ctypes.c_int


F = TypeVar('F', bound=Callable)


def _profiled(method: F) -> F:
    """Label the kernel in ``torch.profiler`` tables (``mmbireal::<name>``):
    a ctypes call is otherwise counted as its caller's own time."""
    label = f'mmbireal::{method.__name__.rstrip("_")}'

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        with torch.profiler.record_function(label):
            return method(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


class BinarizeKernels:
    """ctypes binding of the compiled kernels.

    The methods write through raw pointers, which autograd's version
    counters do not see: they only write into tensors the caller owns.
    """

    def __init__(self, lib: ctypes.CDLL, path: str,
                 flags: List[str]) -> None:
        for name, args in (
            ('mmb_sign', [_c_ptr, _c_ptr, _c_i64, _c_int]),
            ('mmb_mul_surrogate_grad', [_c_ptr, _c_ptr, _c_ptr, _c_i64,
                                        _c_int, _c_int]),
            ('mmb_binarize_weight', [_c_ptr, _c_i64, _c_i64, _c_ptr, _c_int,
                                     _c_int, _c_ptr, _c_int]),
            ('mmb_weight_grad', [_c_ptr, _c_ptr, _c_ptr, _c_i64, _c_i64,
                                 _c_int, _c_int]),
        ):
            fn = getattr(lib, name)
            fn.restype, fn.argtypes = None, args
        self.lib, self.path, self.flags = lib, path, flags

    @_profiled
    def sign(self, x: Tensor, out: Optional[Tensor] = None) -> Tensor:
        """``sign(x)`` with ``sign(0) = +1``, into ``out`` if given."""
        out = torch.empty_like(x) if out is None else out
        self.lib.mmb_sign(x.data_ptr(), out.data_ptr(), x.numel(),
                          torch.get_num_threads())
        return out

    @_profiled
    def mul_surrogate_grad(self, x: Tensor, grad: Tensor, name: str,
                           out: Optional[Tensor] = None) -> Tensor:
        """``grad * d sign(x) / dx`` under surrogate ``name``, into
        ``out`` if given (which may be ``grad``)."""
        out = torch.empty_like(grad) if out is None else out
        self.lib.mmb_mul_surrogate_grad(x.data_ptr(), grad.data_ptr(),
                                        out.data_ptr(), x.numel(),
                                        SURROGATE_KINDS[name],
                                        torch.get_num_threads())
        return out

    @_profiled
    def binarize_weight(self, w: Tensor, scaled: bool,
                        alpha: Optional[Tensor], compute_alpha: bool,
                        out: Optional[Tensor] = None) -> Tensor:
        """``sign(w)`` (times ``alpha`` per output channel if ``scaled``)
        into ``out``; ``alpha`` (``(C_out, 1, ..)`` float32) is filled
        with ``mean |w|`` first if ``compute_alpha``."""
        out = torch.empty_like(w) if out is None else out
        rows = w.shape[0]
        self.lib.mmb_binarize_weight(
            w.data_ptr(), rows, w.numel() // max(rows, 1),
            None if alpha is None else alpha.data_ptr(), int(compute_alpha),
            int(scaled), out.data_ptr(), torch.get_num_threads())
        return out

    @_profiled
    def weight_grad_(self, w: Tensor, grad: Tensor, alpha: Optional[Tensor],
                     strict: bool) -> Tensor:
        """``grad *= mask(w) * alpha`` (see
        :func:`mmbireal.models.binarizers.weight_grad`)."""
        rows = w.shape[0]
        self.lib.mmb_weight_grad(
            w.data_ptr(), grad.data_ptr(),
            None if alpha is None else alpha.data_ptr(), rows,
            w.numel() // max(rows, 1), int(strict), torch.get_num_threads())
        return grad


def build_kernels(cxx: Optional[str] = None,
                  directory: Optional[str] = None) -> BinarizeKernels:
    """Compile (or reuse) the kernels and load them.

    Raises:
        mmbireal.utils.native.NativeBuildError: no compiler, a failed build
            or a library that does not load.
    """
    lib, path, flags = native.build_library(
        SOURCE, ABI_VERSION, directory or native.cache_dir('kernels'), cxx)
    return BinarizeKernels(lib, path, flags)


_kernels = native.LazyLibrary(
    lambda: build_kernels(), 'MMBIREAL_TRAIN_KERNELS',
    'mmbireal: one-pass binarization kernels',
    'binarizing with PyTorch ops (same results, slower on the CPU)')


def _dense(t: Tensor) -> bool:
    return t.is_contiguous() or (t.dim() == 4 and t.is_contiguous(
        memory_format=torch.channels_last))


def kernels_for(*tensors: Tensor) -> Optional[BinarizeKernels]:
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
