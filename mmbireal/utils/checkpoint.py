"""Weights-only checkpoint loading for every path that reads a checkpoint.

mmengine 0.10.7 calls ``torch.load`` without ``weights_only``. Since torch
2.6 that means weights-only mode, which refuses the few non-tensor objects
mmengine's runner itself writes into a checkpoint (the message hub's
``HistoryBuffer`` and the numpy arrays/scalars inside it), so ``load_from``,
``--resume`` and ``tools/test.py`` fail on our own checkpoints.

We keep weights-only mode and allow exactly those types. The loader is
registered as mmengine's scheme for local files, so the runner, the
test tool and our own tools all go through it, and any other pickled object
is refused with a one-line error naming the file.
"""
import contextlib
import glob
import os
import os.path as osp
import pickle
import re
import threading
import urllib.parse
from typing import (
    Any,
    Callable,
    Dict,
    Iterator,
    List,
    Optional,
    Sequence,
    Union,
)

import mmengine.runner.checkpoint as mmengine_checkpoint
import numpy as np
import torch
from mmengine.dist import get_dist_info
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader

from .errors import CheckpointError


def _numpy_globals() -> List[Any]:
    """The numpy reconstructors a pickled array or scalar refers to."""
    try:  # numpy >= 2 moved the pickling helpers to ``numpy._core``
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import _reconstruct, scalar
    # HistoryBuffer keeps float64/int64 arrays; the others cover numpy
    # scalars logged by hooks and metrics.
    dtypes = [
        type(np.dtype(t))
        for t in (np.float64, np.float32, np.int64, np.int32, np.bool_)
    ]
    return [_reconstruct, scalar, np.ndarray, np.dtype, *dtypes]


# HistoryBuffer pickles its statistics table as ``getattr(HistoryBuffer,
# 'mean')`` etc. Allowing ``getattr`` itself would hand a checkpoint any
# attribute of any allowed object, so the unpickler gets this narrow
# stand-in under the name ``builtins.getattr`` instead.
_HISTORY_BUFFER_METHODS = frozenset({'min', 'max', 'current', 'mean'})


def _history_buffer_method(obj: Any, name: str) -> Any:
    if obj is HistoryBuffer and name in _HISTORY_BUFFER_METHODS:
        return getattr(HistoryBuffer, name)
    owner = getattr(obj, '__name__', type(obj).__name__)
    raise pickle.UnpicklingError(
        f'GLOBAL builtins.getattr({owner}.{name}) is not allowed')


def checkpoint_safe_globals() -> List[Any]:
    """Every non-tensor type mmengine's runner saves in our checkpoints."""
    return [
        HistoryBuffer, (_history_buffer_method, 'builtins.getattr'),
        *_numpy_globals()
    ]


# torch's allow-list is process-wide: loads take turns at it
_ALLOW_LIST_LOCK = threading.Lock()


@contextlib.contextmanager
def _allowed_while_loading(allowed: List[Any]) -> Iterator[None]:
    """Add ``allowed`` to torch's weights-only allow-list for one load,
    then remove exactly what was added: entries the host application
    allowed before stay allowed (``torch.serialization.safe_globals``
    would remove them too)."""
    with _ALLOW_LIST_LOCK:
        before = torch.serialization.get_safe_globals()
        added = [g for g in allowed if g not in before]
        torch.serialization.add_safe_globals(added)
        try:
            yield
        finally:
            kept = [g for g in torch.serialization.get_safe_globals()
                    if g not in added]
            torch.serialization.clear_safe_globals()
            torch.serialization.add_safe_globals(kept)


def load_checkpoint_file(filename: str,
                         map_location: Optional[Union[str, Callable]] = None
                         ) -> Any:
    """``torch.load`` in weights-only mode with our allow-list.

    Raises:
        FileNotFoundError: ``filename`` does not exist.
        CheckpointError: the file is truncated, not a checkpoint, or holds
            a pickled object outside the allow-list. Nothing from the file
            is executed.
    """
    filename = osp.expanduser(filename)
    if osp.isdir(filename):
        found = sorted(glob.glob(osp.join(filename, '*.pth')),
                       key=osp.getmtime)
        example = f', e.g. {found[-1]}' if found else ''
        raise CheckpointError(f'checkpoint {filename} is a folder: give a '
                              f'checkpoint file in it{example}')
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint {filename} does not exist')
    try:
        with _allowed_while_loading(checkpoint_safe_globals()):
            return torch.load(
                filename, map_location=map_location, weights_only=True)
    # torch raises many types here (UnpicklingError, RuntimeError from the
    # zip reader, KeyError/EOFError from legacy pickles...), each with a
    # page of advice; reduce every one of them to one line.
    except Exception as e:  # noqa: BLE001
        error, text = type(e).__name__, str(e)
    found = re.search(r'GLOBAL (\S+)', text) or re.search(
        r'Can only build .*?, but got (.+?)(?:$|\n)', text)
    if found:
        raise CheckpointError(
            f'refusing to load checkpoint {filename}: it holds '
            f'{found.group(1)}, which weights-only loading does not allow')
    if filename.endswith('.py'):
        raise CheckpointError(
            f'checkpoint {filename} is a config file; expected a .pth '
            'checkpoint or a packed 1-bit file (export_binary.py)')
    reason = (text.strip().splitlines() or [''])[0].split('. ')[0]
    raise CheckpointError(
        f'cannot read checkpoint {filename}: truncated or not a torch '
        f'checkpoint ({error}: {reason})')


def _unpacked(checkpoint: Any, filename: str) -> Any:
    """A packed 1-bit file reads as a checkpoint of its float model (see
    :mod:`mmbireal.deploy.unpack`): a ``state_dict``, and a ``meta`` with
    the class names as mmengine's checkpoints hold them, which hooks
    (``EMAHook``) and ``get_model`` read. Any other checkpoint as it is."""
    from mmbireal.deploy.unpack import float_state_dict, is_packed_file
    if not is_packed_file(checkpoint):
        return checkpoint
    classes = (checkpoint.get('meta') or {}).get('classes')
    return dict(state_dict=float_state_dict(checkpoint, filename),
                meta=dict(dataset_meta=dict(classes=classes))
                if classes else {})


def _load_from_local(filename: str,
                     map_location: Optional[Union[str, Callable]] = None
                     ) -> Any:
    return _unpacked(load_checkpoint_file(filename, map_location), filename)


def _download(url: str, model_dir: Optional[str]) -> str:
    """The file at ``url`` in torch's hub cache (as mmengine's loader keeps
    it), downloaded if it is not there yet."""
    model_dir = model_dir or osp.join(torch.hub.get_dir(), 'checkpoints')
    path = osp.join(model_dir, osp.basename(urllib.parse.urlparse(url).path))
    if not osp.isfile(path):
        os.makedirs(model_dir, exist_ok=True)
        try:  # to a temporary file, moved into place when complete
            torch.hub.download_url_to_file(url, path, progress=False)
        except (OSError, ValueError) as e:  # URLError is an OSError
            raise CheckpointError(f'cannot download checkpoint {url}: '
                                  f'{e}'.splitlines()[0]) from None
    return path


def _load_from_url(filename: str,
                   map_location: Optional[Union[str, Callable]] = None,
                   model_dir: Optional[str] = None, **kwargs) -> Any:
    """A checkpoint at an http(s) URL, read as a local file once
    downloaded: mmengine's loader goes through ``torch.hub``, which
    unpickles the file in full (``weights_only=False``). Rank 0 downloads
    first, as in mmengine."""
    rank, world_size = get_dist_info()
    failed: Optional[CheckpointError] = None
    if rank == 0:
        try:
            path = _download(filename, model_dir)
        except CheckpointError as e:  # after the barrier: no rank waits
            failed = e
    if world_size > 1:
        torch.distributed.barrier()
        if rank > 0:  # the file rank 0 fetched, or a failure of its own
            path = _download(filename, model_dir)
    if failed is not None:
        raise failed
    return _load_from_local(path, map_location)


def install_safe_checkpoint_loader() -> None:
    """Make mmengine read checkpoints through our loaders: local files, and
    files at http(s) URLs, directly or through mmengine's ``torchvision://``,
    ``open-mmlab://`` and ``mmcls://`` names (packed 1-bit files as their
    float model's state dict)."""
    CheckpointLoader.register_scheme(prefixes='', force=True)(
        _load_from_local)
    CheckpointLoader.register_scheme(
        prefixes=('http://', 'https://'), force=True)(_load_from_url)
    # the named schemes call this module-level function
    mmengine_checkpoint.load_from_http = _load_from_url


def load_state_dict_file(filename: str,
                         model: Optional[torch.nn.Module] = None
                         ) -> Dict[str, Any]:
    """The state dict of a checkpoint file, read in weights-only mode, with
    a DataParallel ``module.`` prefix removed (as mmengine loads it); a
    packed 1-bit file gives its float model's.

    Args:
        filename (str): The checkpoint file, or a URL or name that
            mmengine's loaders read (``https://``, ``torchvision://``...;
            weights-only too, see :func:`install_safe_checkpoint_loader`).
        model (nn.Module, optional): The model it is for: a packed file
            must then have been exported with the model's padding mode,
            which no key or shape tells apart. Defaults to None.

    Raises:
        FileNotFoundError, CheckpointError: as :func:`load_checkpoint_file`;
            CheckpointError also if the file holds no state dict, or is a
            packed file of another padding than ``model``'s.
    """
    if '://' in filename:  # mmengine's loader for the scheme: ours
        from mmengine.runner.checkpoint import CheckpointLoader
        checkpoint = CheckpointLoader.load_checkpoint(filename, 'cpu')
    else:
        checkpoint = _load_from_local(filename, map_location='cpu')
    state = checkpoint.get('state_dict', checkpoint) if isinstance(
        checkpoint, dict) else None
    if not isinstance(state, dict):
        raise CheckpointError(f'checkpoint {filename} holds no state dict')
    state = {re.sub(r'^module\.', '', k): v for k, v in state.items()}
    backbone = getattr(model, 'backbone', model)
    if hasattr(backbone, 'adapt_packed_state'):
        try:  # now, before any other check or load
            backbone.adapt_packed_state(
                state, 'backbone.' if backbone is not model else '')
        except CheckpointError as e:
            raise CheckpointError(f'packed file {filename}: {e}') from None
    return state


def check_state_dict_fits(model: torch.nn.Module, state: Dict[str, Any],
                          filename: str,
                          prefixes: Optional[Sequence[str]] = None) -> None:
    """Raise :class:`CheckpointError` if ``state`` (read from ``filename``)
    does not fit ``model``: missing or unexpected keys, or other shapes.

    mmengine loads ``load_from`` and ``tools/test.py`` checkpoints
    non-strictly, so a checkpoint of another depth would only log a warning
    and leave layers randomly initialised.

    Args:
        model (nn.Module): The model the config builds.
        state (dict): The checkpoint's state dict.
        filename (str): Where it came from, for the message.
        prefixes (Sequence[str], optional): Compare only keys starting with
            one of these, e.g. ``('backbone.', )`` to allow a new head when
            fine-tuning. Defaults to None (every key but the data
            preprocessor's, which holds no weights).
    """
    own = model.state_dict()

    def wanted(key: str) -> bool:
        if prefixes is None:
            return not key.startswith('data_preprocessor.')
        return key.startswith(tuple(prefixes))

    missing = [k for k in own if wanted(k) and k not in state]
    unexpected = [k for k in state if wanted(k) and k not in own]
    resized = [
        f'{k}: checkpoint {tuple(state[k].shape)}, model '
        f'{tuple(own[k].shape)}' for k in own
        if wanted(k) and k in state and hasattr(state[k], 'shape')
        and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    problems = [
        f'{len(keys)} {what} ({", ".join(keys[:2])}'
        f'{", ..." if len(keys) > 2 else ""})'
        for what, keys in (('missing keys', missing), ('unexpected keys',
                                                       unexpected),
                           ('shape mismatches', resized)) if keys
    ]
    if problems:
        raise CheckpointError(
            f'checkpoint {filename} does not fit the model of the config '
            f'(another depth or architecture?): {"; ".join(problems)}')


def load_fitting_checkpoint(model: torch.nn.Module, filename: str) -> None:
    """Load the weights of ``filename`` into ``model``, refusing a
    checkpoint that does not fit it (:func:`check_state_dict_fits`).

    Args:
        model (torch.nn.Module): The model to load into.
        filename (str): The checkpoint file.

    Raises:
        CheckpointError: the file is unreadable, or its keys or shapes do
            not match the model's (one line).
    """
    state = load_state_dict_file(filename, model)
    check_state_dict_fits(model, state, filename)
    # strict=False: the data preprocessor's buffers are not saved
    model.load_state_dict(state, strict=False)


def check_checkpoint_fits(model: torch.nn.Module, filename: str,
                          prefixes: Optional[Sequence[str]] = None) -> None:
    """:func:`check_state_dict_fits` on the checkpoint file ``filename``."""
    check_state_dict_fits(model, load_state_dict_file(filename, model),
                          filename, prefixes)


def atomic_torch_save(obj: Any, path: str,
                      rename: Optional[Callable[[str], str]] = None) -> str:
    """``torch.save`` to a temporary file, then rename it: a reader never
    sees half a file, and a failed write leaves nothing behind.

    Args:
        obj (Any): What to save.
        path (str): The file to write; its folder is created if needed.
        rename (Callable[[str], str], optional): Gives the final path from
            the written temporary file (e.g. a name holding its digest).
            Defaults to None: ``path``.

    Returns:
        str: The path written.

    Raises:
        CheckpointError: the file cannot be written (full disk, no
            permission...); one line naming it.
    """
    tmp = f'{path}.tmp{os.getpid()}'
    try:
        os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
        # through a file object: a failed write raises OSError (torch's own
        # file writer raises RuntimeError, as it does for bugs)
        with open(tmp, 'wb') as f:
            torch.save(obj, f)
        final = rename(tmp) if rename else path
        os.replace(tmp, final)
    except OSError as e:
        raise CheckpointError(
            f'cannot write {path}: {e.strerror or e}') from None
    finally:  # any failure, e.g. an object that does not pickle
        if osp.exists(tmp):
            os.remove(tmp)
    return final
