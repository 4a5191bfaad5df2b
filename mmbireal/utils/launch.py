"""Shared set-up of tools/train.py and tools/test.py."""
import argparse
import gc
import inspect
import logging
import os
import os.path as osp
import shlex
import sys
from typing import Callable, List, NoReturn, Optional, Tuple, TypeVar

import torch
import torch.distributed as torch_dist
from mmengine.config import Config
from mmengine.runner import Runner

from .checkpoint import check_checkpoint_fits, load_checkpoint_file
from .config import (
    add_cfg_options,
    read_config,
    unexpected_argument_message,
    unknown_type_message,
)
from .errors import CheckpointError, InputError, InvalidLossError
from .paths import PACKAGE_PARENT
from .resume import resume_point

T = TypeVar('T')


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """The arguments tools/train.py and tools/test.py share with
    MMPretrain's (``--cfg-options``, ``--launcher``, ``--local-rank``),
    and ``--verbose``."""
    add_cfg_options(parser)
    parser.add_argument(
        '--verbose',
        action='store_true',
        help="print mmengine's whole start-up log (environment, config, "
        'hook order) on the console too; the log file always has it')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def fail(message: str) -> NoReturn:
    """Exit with status 2 and a one-line message, no traceback."""
    print(f'error: {message}', file=sys.stderr)
    sys.exit(2)


def check_output_file(path: str) -> None:
    """Exit with one line if ``path`` cannot be written: its folder must
    exist and be writable (checked before any long work)."""
    folder = osp.dirname(osp.abspath(path))
    if not osp.isdir(folder) or not os.access(folder, os.W_OK):
        fail(f'output directory {folder} does not exist or is not writable')


def load_config(path: str) -> Config:
    """Read a config file (a path or ``pkg::rel/path.py``) or exit with a
    clear message."""
    try:
        return read_config(path)
    except FileNotFoundError as e:
        fail(str(e))
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
    if not torch.cuda.is_available():
        # also without a launcher, so the logged settings say gloo, not nccl
        env_cfg = dict(cfg.get('env_cfg') or {})
        env_cfg['dist_cfg'] = dict(env_cfg.get('dist_cfg') or {},
                                   backend='gloo')
        cfg.env_cfg = env_cfg
    if launcher == 'none':
        return
    if launcher == 'pytorch':
        os.environ.setdefault('LOCAL_RANK', '0')
    if torch.cuda.is_available():
        return
    if launcher != 'pytorch':  # mmengine's slurm/mpi setup picks a GPU
        fail(f'--launcher {launcher} needs CUDA (mmengine selects a GPU '
             'for it); on a machine without one, start the processes with '
             'torchrun and --launcher pytorch')
    if not torch_dist.is_initialized():
        torch_dist.init_process_group(backend='gloo')
    # mmengine reads the top-level find_unused_parameters only when it
    # builds the wrapper itself
    wrapper = cfg.get('model_wrapper_cfg') or dict(
        type='MMDistributedDataParallel', broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper


def check_start_checkpoint(cfg: Config, head_may_differ: bool) -> None:
    """Raise :class:`CheckpointError` if the checkpoint the run will start
    from (``resume``, else ``load_from``) does not fit the config's model.

    ``head_may_differ`` compares only the backbone for ``load_from``, so
    fine-tuning with a new head keeps working; a resumed run must always
    match its checkpoint fully.
    """
    from mmbireal.apis import build_model

    path = cfg.get('load_from')
    if cfg.get('resume') and not path:
        path = resume_point(cfg.work_dir)
    if not path:
        return
    model = build_model(cfg)
    prefixes = ('backbone.', ) if head_may_differ and not cfg.get(
        'resume') else None
    check_checkpoint_fits(model, path, prefixes)


def set_work_dir(cfg: Config, work_dir: Optional[str], config: str) -> None:
    """``--work-dir``, else the config's, else ``./work_dirs/<config
    name>`` (as MMPretrain's tools choose it)."""
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(config))[0])


def warn_other_checkout(tool_file: str) -> None:
    """One line on stderr when a tool of one checkout imports mmbireal from
    another: the venv's editable install follows the checkout that last ran
    ``tools/setup_env.sh``, and the tools would run that one's code."""
    package_root = PACKAGE_PARENT
    tool_root = osp.dirname(osp.dirname(osp.realpath(tool_file)))
    # a wheel's tools (mmbireal/.mim/tools) have no checkout of their own
    if osp.isdir(osp.join(tool_root, 'mmbireal')) and \
            package_root != tool_root:
        print(f'warning: this is {tool_root}, but mmbireal comes from '
              f'{package_root}: run `bash tools/setup_env.sh` here (or set '
              f'PYTHONPATH={tool_root})', file=sys.stderr)


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

    Bad configuration or data (including a config entry that the class
    built from it does not take), a refused or unreadable checkpoint, a
    missing file and a NaN loss are answered with their message alone (``also``
    adds more types, e.g. the registry's KeyError while building from a
    config); anything else keeps its traceback: it is a bug to report.
    """
    try:
        return step()
    except USER_ERRORS + also as e:
        if isinstance(e, KeyError):  # str() would be the repr of its text
            fail(unknown_type_message(e) or (e.args[0] if e.args else e))
        fail(str(e))
    except TypeError as e:
        # a config entry the class built from it does not take
        message = unexpected_argument_message(e)
        if message is None:
            raise
        fail(message)


def build_runner(cfg: Config, verbose: bool = False) -> Runner:
    """The config's runner (``runner_type``), else mmengine's Runner with
    the readable console of :class:`ConsoleSummaryRunner` (``verbose``:
    mmengine's full console output); a config mistake ends in one line."""
    from mmengine.registry import RUNNERS

    from .console import ConsoleSummaryRunner
    if 'runner_type' in cfg:
        build = RUNNERS.build
    else:
        build = (Runner if verbose else ConsoleSummaryRunner).from_cfg
    runner = run_or_fail(lambda: build(cfg),
                         also=(KeyError, ))  # an unknown `type` in the config
    check_checkpoint_hooks(runner)
    check_head_fits_backbone(runner.model)
    return runner


def check_head_fits_backbone(model: torch.nn.Module) -> None:
    """Refuse now a classifier head whose ``in_channels`` is not what the
    backbone gives (after global average pooling, or no neck): e.g. a
    narrowed backbone with the head's 512 left, which fails at the first
    forward with a matrix-shape traceback."""
    from mmpretrain.models.necks import GlobalAveragePooling

    from mmbireal.engine.param_groups import unwrap
    model = unwrap(model)
    backbone = getattr(model, 'backbone', None)
    feat_dim = getattr(backbone, 'feat_dim', None)  # the last stage's width
    stages = getattr(backbone, 'res_layers', None)
    out_indices = getattr(backbone, 'out_indices', None)
    # the backbone returns its outputs in stage order: the head reads the
    # highest index, whatever order out_indices lists them in
    if isinstance(stages, (list, tuple)) and stages and isinstance(
            out_indices, (list, tuple)) and out_indices and \
            max(i % len(stages) for i in out_indices) != len(stages) - 1:
        return  # the head reads an earlier stage
    head = getattr(model, 'head', None)
    in_channels = getattr(head, 'in_channels', None)
    neck = getattr(model, 'neck', None)
    pooled = neck is None or isinstance(neck, GlobalAveragePooling)
    if pooled and isinstance(feat_dim, int) and \
            isinstance(in_channels, int) and feat_dim != in_channels:
        fail(f'model.head.in_channels is {in_channels}, but the backbone '
             f'({type(model.backbone).__name__}) gives {feat_dim} channels: '
             f'set model.head.in_channels={feat_dim}')


# what mmengine's CheckpointHook passes to runner.save_checkpoint itself
_SAVE_ARGUMENTS = ('out_dir', 'filename', 'file_client_args',
                   'save_optimizer', 'save_param_scheduler', 'meta',
                   'by_epoch', 'backend_args')


def check_checkpoint_hooks(runner: Runner) -> None:
    """Refuse checkpoint-hook arguments now that would end the run at its
    first save: mmengine's ``CheckpointHook`` takes any keyword and hands
    those it does not know to ``runner.save_checkpoint``, so a typo
    (``intervl=500``) only fails after an interval of training."""
    from mmengine.hooks import CheckpointHook

    from .config import chain_arguments
    params = inspect.signature(runner.save_checkpoint).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return  # a runner that takes anything
    for hook in runner.hooks:
        extra = getattr(hook, 'args', None)
        if not isinstance(hook, CheckpointHook) or not extra:
            continue
        unknown = [k for k in extra
                   if k not in params or k in _SAVE_ARGUMENTS]
        if unknown:
            accepted = [a for a in chain_arguments(type(hook))
                        if a != 'kwargs'] + [
                            p for p in params if p not in _SAVE_ARGUMENTS]
            fail(f'{type(hook).__name__} does not take the argument(s) '
                 f'{", ".join(map(repr, unknown))} given in the config; '
                 f'accepted: {", ".join(accepted)}')


def print_metrics(metrics: dict) -> None:
    """``name: value`` lines on stdout, floats with two decimals."""
    for name, value in metrics.items():
        print(f'{name}: {value:.2f}' if isinstance(value, float) else
              f'{name}: {value}')


def check_resume_source(cfg: Config, resume: Optional[str]) -> None:
    """Exit with one line if ``--resume`` has nothing to resume from,
    instead of mmengine's silent start from scratch.

    A run that resumes without a path (``--resume``, or ``resume=True`` in
    the config) gets the checkpoint of :func:`resume_point`, pinned in
    ``cfg.load_from``: mmengine would follow ``last_checkpoint`` to the
    recorded path, which is gone when the work dir was moved.

    Args:
        cfg (Config): The run's config (``work_dir``, ``resume`` and
            ``load_from`` set from the command line).
        resume (str, optional): ``--resume``'s value: None, ``'auto'``
            (no path) or a checkpoint.
    """
    if resume not in (None, 'auto'):
        if not osp.isfile(resume):
            fail(f'--resume: checkpoint {resume} does not exist')
        _check_training_checkpoint(resume)
        return
    if not cfg.get('resume') or cfg.get('load_from'):
        return
    point = resume_point(cfg.work_dir)
    if point is not None:
        cfg.load_from = point
    elif resume == 'auto':
        fail(f'--resume: no checkpoint to resume in {cfg.work_dir} (neither '
             'the one its last_checkpoint names, at that path or in the '
             'work dir, nor an epoch_*.pth); to train from scratch, run the '
             'same command without --resume')


def _check_training_checkpoint(path: str) -> None:
    """Exit with one line unless ``path`` holds the epoch and iteration a
    runner resumes from (mmengine stops with a KeyError otherwise): packed
    1-bit files and published weights start runs through ``load_from``."""
    checkpoint = run_or_fail(lambda: load_checkpoint_file(path, 'cpu'))
    meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
    if isinstance(meta, dict) and {'epoch', 'iter'} <= set(meta):
        return
    from mmbireal.deploy.unpack import is_packed_file
    what = 'a packed 1-bit file' if is_packed_file(checkpoint) else \
        'weights without the training state'
    fail(f'--resume: {path} is {what}, with no epoch to resume from; to '
         f'start training from its weights, use --cfg-options '
         f'load_from={path} without --resume')


def _resume_command(resume: Optional[str],
                    command: Optional[List[str]] = None) -> List[str]:
    """``command`` (default: this process's) with ``--resume`` (and no
    path)."""
    if command is None:
        command = [sys.executable, *sys.argv]
    argv, skip = [], False
    for arg in command:
        if skip:
            skip = False
            if arg == resume:
                continue
        if arg == '--resume':
            skip = True
            continue
        if not arg.startswith('--resume='):
            argv.append(arg)
    return [*argv, '--resume']


def _launch_command() -> Optional[List[str]]:
    """The command that started the launcher (``tools/dist_train.sh``
    records it), so the resume line can name it."""
    command = os.environ.get('MMBIREAL_LAUNCH_COMMAND')
    return shlex.split(command) if command else None


def exit_interrupted(work_dir: str, resume: Optional[str],
                     launcher: str = 'none') -> NoReturn:
    """After Ctrl-C: one line on stderr naming the checkpoint to resume
    from and the command (or saying there is none); exit status 130."""
    if int(os.environ.get('RANK', 0)) == 0:
        checkpoint = resume_point(work_dir)
        launch = _launch_command() if launcher != 'none' else None
        if checkpoint is None and resume not in (None, 'auto'):
            # nothing newer was saved: the same command resumes again
            checkpoint = resume
            command = launch or [sys.executable, *sys.argv]
        else:
            command = _resume_command(resume, launch)
        how = (shlex.join(command) if launcher == 'none' or launch else
               'the same launcher command with --resume')
        if checkpoint is None:
            print(f'interrupted before a checkpoint was saved in {work_dir}'
                  ': nothing to resume; start again with the same command',
                  file=sys.stderr)
        else:
            print(f'interrupted: resume from {checkpoint} with: {how}',
                  file=sys.stderr)
    sys.exit(130)


def exit_test_interrupted(out: Optional[str]) -> NoReturn:
    """After Ctrl-C in a test run: one line on stderr, exit status 130.

    An evaluation keeps no partial state, so there is nothing to resume;
    ``--out`` is written only when the whole test set was seen."""
    if int(os.environ.get('RANK', 0)) == 0:
        kept = f'; {out} was not written' if out else ''
        print(f'interrupted: the test is not finished and has no partial '
              f'result{kept}; run the same command again', file=sys.stderr)
    sys.exit(130)


def torchrun() -> NoReturn:
    """``python -m torch.distributed.run``, ending quietly after Ctrl-C or
    a worker's error.

    The workers print what to do (the resume line, or their one error
    line); the agent's own warnings and its ``SignalException`` or
    ``ChildFailedError`` traceback would bury it. Exit status: the failed
    worker's, or 128 + the signal, as a shell reports it."""
    from torch.distributed import run
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import (
        ChildFailedError,
    )

    # each elastic module's logger has its own level (LOGLEVEL, read when
    # it was created): only errors, and the workers' lines, remain; a
    # failed worker is reported below, in one line
    for name, logger in logging.root.manager.loggerDict.items():
        if name.startswith('torch.distributed') and isinstance(
                logger, logging.Logger):
            logger.setLevel(logging.CRITICAL if name.endswith(
                'multiprocessing.api') else logging.ERROR)
    try:
        run.main()
    except SignalException as e:
        sys.exit(128 + int(e.sigval))
    except ChildFailedError as e:
        rank, failure = e.get_first_failure()
        if failure.exitcode not in (2, 130):  # 2, 130: the worker said why
            print(f'error: process {rank} exited with status '
                  f'{failure.exitcode} ({failure.message or "no message"})',
                  file=sys.stderr)
        # a negative status is a signal: 128 + it, as a shell reports it
        sys.exit(failure.exitcode if failure.exitcode > 0 else
                 128 - failure.exitcode if failure.exitcode < 0 else 1)
    sys.exit(0)


def follows_interrupt(error: BaseException) -> bool:
    """Whether ``error`` was raised while a Ctrl-C was being handled.

    Under a launcher a Ctrl-C lands wherever the worker is, and code that
    catches everything (mmengine formats the config for every checkpoint
    with a bare ``except``) turns it into another error."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, KeyboardInterrupt):
            return True
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return False


def teardown_distributed() -> None:
    """Destroy the process group before exit: gloo's threads torn down at
    interpreter exit can abort a rank ('terminate called without an active
    exception') after a run that succeeded."""
    if torch_dist.is_available() and torch_dist.is_initialized():
        # the finished runner sits in reference cycles (its loop and hooks
        # point back at it): free it, its DDP model and their gloo work now,
        # while Python can still release the tensors the work holds
        gc.collect()
        # every rank reaches this point before any tears down, so no rank's
        # gloo or store threads still talk to a peer that is exiting
        torch_dist.barrier()
        torch_dist.destroy_process_group()
