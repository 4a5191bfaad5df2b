"""A stand-in for CUDA tensors on a CPU-only machine, for the code paths
that run after a checkpoint is loaded with ``map_location='cuda'`` (as
mmengine resumes a GPU run). :class:`OnGPU` says it is on cuda:0 and, as a
CUDA tensor would, refuses to meet a CPU tensor in an op or to become a
numpy array; :func:`gpu_factories` creates the tensors asked for on cuda:0
as such."""
import contextlib
from typing import Any, Iterator, Optional

import torch
from torch.overrides import TorchFunctionMode
from torch.utils import _pytree as pytree

GPU = torch.device('cuda', 0)

# what PyTorch runs on tensors of two devices: copies and moves, and views
# shaped as another tensor
_ACROSS_DEVICES = {torch.Tensor.copy_, torch.Tensor.to, torch.Tensor.view_as,
                   torch.Tensor.expand_as, torch.Tensor.reshape_as}


def _target(args: tuple, kwargs: dict) -> Optional[torch.device]:
    """The device a ``Tensor.to(*args, **kwargs)`` call moves to, or
    None."""
    return torch._C._nn._parse_to(*args[1:], **kwargs)[0]


class OnGPU(torch.Tensor):
    """A CPU tensor that behaves as a CUDA one where it matters here."""

    @property
    def device(self) -> torch.device:
        return GPU

    @property
    def is_cpu(self) -> bool:
        return False

    @property
    def is_cuda(self) -> bool:
        return True

    def numpy(self, *args, **kwargs):
        raise TypeError("can't convert cuda:0 device type tensor to numpy")

    def cpu(self, *args, **kwargs) -> torch.Tensor:
        return self.as_subclass(torch.Tensor).clone()

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        leaves = pytree.tree_leaves((args, kwargs))
        if func not in _ACROSS_DEVICES:
            with torch._C.DisableTorchFunctionSubclass():
                # a 0-dim CPU tensor is a scalar to CUDA ops too
                cpu = [t for t in leaves if isinstance(t, torch.Tensor)
                       and not isinstance(t, cls) and t.dim() > 0]
            if cpu:
                raise RuntimeError('Expected all tensors to be on the same '
                                   'device, but found at least two devices, '
                                   'cuda:0 and cpu!')
        out = super().__torch_function__(func, types, args, kwargs)
        if func is torch.Tensor.to:
            target = _target(args, kwargs)
            if target is not None and target.type == 'cpu':
                return out.as_subclass(torch.Tensor)
        return out


class _GpuFactories(TorchFunctionMode):
    """Tensors created or moved with ``device=cuda`` come out as
    :class:`OnGPU` (on the CPU, whatever this machine has)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if func is torch.Tensor.to and not isinstance(args[0], OnGPU):
            target, dtype = torch._C._nn._parse_to(*args[1:], **kwargs)[:2]
            if target is not None and target.type == 'cuda':
                moved = args[0].to('cpu', dtype=dtype, copy=True)
                return moved.as_subclass(OnGPU)
        device = kwargs.get('device')
        if device is not None and torch.device(device).type == 'cuda':
            kwargs['device'] = 'cpu'
            return func(*args, **kwargs).as_subclass(OnGPU)
        return func(*args, **kwargs)


@contextlib.contextmanager
def gpu_factories() -> Iterator[None]:
    with _GpuFactories():
        yield


def on_gpu(tree: Any) -> Any:
    """``tree`` as ``torch.load(..., map_location='cuda')`` gives it: every
    tensor in its dicts, lists and tuples made an :class:`OnGPU`."""
    if isinstance(tree, torch.Tensor):
        return tree.as_subclass(OnGPU)
    if isinstance(tree, dict):
        return {k: on_gpu(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(on_gpu(v) for v in tree)
    return tree
