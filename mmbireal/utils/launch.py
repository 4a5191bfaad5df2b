"""Shared set-up of tools/train.py and tools/test.py."""
import os
import os.path as osp
import sys
from typing import Callable, NoReturn, Tuple, TypeVar

import torch
import torch.distributed as torch_dist
from mmengine.config import Config

from .checkpoint import check_checkpoint_fits
from .errors import CheckpointError, InputError, InvalidLossError

T = TypeVar('T')


def fail(message: str) -> NoReturn:
    """Exit with status 2 and a one-line message, no traceback."""
    print(f'error: {message}', file=sys.stderr)
    sys.exit(2)


def load_config(path: str) -> Config:
    """Read a config file or exit with a clear message."""
    if not osp.isfile(path):
        fail(f'config file {path} does not exist')
    try:
        return Config.fromfile(path)
    # syntax errors, a missing _base_, failed custom imports... all end here
    except Exception as e:  # noqa: BLE001
        fail(f'cannot read config {path}: {type(e).__name__}: {e}')


def setup_distributed(cfg: Config, launcher: str) -> None:
    """Record the launcher; on machines without CUDA use gloo on the CPU.

    mmengine's ``init_dist`` selects a CUDA device unconditionally, and its
    DDP wrapper passes ``device_ids``, which CPU modules do not accept. On a
    CPU-only machine we start the process group ourselves (mmengine then
    skips its own) and build DDP without device ids.
    """
    cfg.launcher = launcher
    if launcher == 'none':
        return
    if launcher == 'pytorch':
        os.environ.setdefault('LOCAL_RANK', '0')
    if torch.cuda.is_available():
        return
    cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})
    cfg.env_cfg.dist_cfg.backend = 'gloo'
    if launcher == 'pytorch' and not torch_dist.is_initialized():
        torch_dist.init_process_group(backend='gloo')
    wrapper = cfg.get('model_wrapper_cfg') or dict(
        type='MMDistributedDataParallel', broadcast_buffers=False)
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper


def check_start_checkpoint(cfg: Config, head_may_differ: bool) -> None:
    """Raise :class:`CheckpointError` if the checkpoint the run will start
    from (``resume``, else ``load_from``) does not fit the config's model.

    ``head_may_differ`` compares only the backbone for ``load_from``, so
    fine-tuning with a new head keeps working; a resumed run must always
    match its checkpoint fully.
    """
    from mmengine.runner import find_latest_checkpoint

    from mmbireal.apis import build_model

    path = cfg.get('load_from')
    if cfg.get('resume') and not path:
        path = find_latest_checkpoint(cfg.work_dir)
    if not path:
        return
    model = build_model(cfg)
    prefixes = ('backbone.', ) if head_may_differ and not cfg.get(
        'resume') else None
    check_checkpoint_fits(model, path, prefixes)


def check_writable_dir(path: str) -> None:
    """Exit with a clear message if ``path`` cannot be created/written."""
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        fail(f'cannot create work dir {path}: {e.strerror}')
    if not os.access(path, os.W_OK):
        fail(f'work dir {path} is not writable')


USER_ERRORS = (InputError, CheckpointError, InvalidLossError,
               FileNotFoundError)


def run_or_fail(step: Callable[[], T], also: Tuple[type, ...] = ()) -> T:
    """Run ``step``; turn the errors a user can fix into one-line exits.

    Bad configuration or data, a refused or unreadable checkpoint, a missing
    file and a NaN loss are answered with their message alone (``also``
    adds more types, e.g. the registry's KeyError while building from a
    config); anything else keeps its traceback: it is a bug to report.
    """
    try:
        return step()
    except USER_ERRORS + also as e:
        # KeyError's str() is the repr of its argument
        fail(e.args[0] if isinstance(e, KeyError) and e.args else str(e))
