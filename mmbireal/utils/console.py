"""A console log a person can read; the log file keeps every detail.

mmengine's runner starts every run by printing the whole environment
(including PyTorch's 2 KB build flags), the whole config and a 90-line
table of hook calls, and some of its dependencies warn about things a user
of this project cannot change. :class:`ConsoleSummaryRunner` prints one
summary line instead of the first three on the console (the run's log file
still gets them in full) and :func:`quiet_known_warnings` silences the
warnings listed in :data:`KNOWN_WARNINGS`, by message; every other warning
is shown as before.
"""
import logging
import os
import os.path as osp
import platform
import re
import subprocess
import sys
import warnings
from typing import Optional, Tuple, Type

import torch
from mmengine.logging import MMLogger
from mmengine.runner import Runner

from .native import cpu_flags
from .paths import PACKAGE_PARENT

# (start of the message, category, why the user cannot act on it)
KNOWN_WARNINGS: Tuple[Tuple[str, Type[Warning], str], ...] = (
    ('pkg_resources is deprecated as an API', UserWarning,
     'mmengine finds packages through pkg_resources; setuptools is pinned '
     'below 82 (requirements/constraints.txt), which still has it'),
    ('Fail to import ``MultiScaleDeformableAttention``', UserWarning,
     'mmcv-lite has no compiled ops; no MMPretrain classifier uses this '
     'detection op'),
)

# Start-up messages of mmengine that the console replaces by the summary
# line or drops (the log file keeps them): the environment, the config,
# the hook table, a SyncBN notice for a model without SyncBN and two
# deprecation notices about mmengine's own file-client code.
FILE_ONLY_PREFIXES = (
    '\n' + '-' * 60 + '\nSystem environment:',
    'Config:\n',
    'Hooks will be executed in the following order:',
    'Distributed training is not used, all SyncBatchNorm',
    '"FileClient" will be deprecated in future.',
    '"HardDiskBackend" is the alias of "LocalBackend"',
)


def quiet_known_warnings() -> None:
    """Ignore the warnings of :data:`KNOWN_WARNINGS` (and only those)."""
    for start, category, _ in KNOWN_WARNINGS:
        warnings.filterwarnings(
            'ignore', message=re.escape(start), category=category)


class ConsoleSummaryFilter(logging.Filter):
    """Keeps the file-only start-up messages and repeats of the previous
    message (two checkpoint hooks announce the same folder) off the
    console handler."""

    def __init__(self) -> None:
        super().__init__()
        self._previous: Optional[str] = None

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message.startswith(FILE_ONLY_PREFIXES):
            return False
        repeated = message == self._previous
        self._previous = message
        return not repeated


def _version(module: str) -> str:
    return getattr(sys.modules.get(module), '__version__', '?')


def cpu_name() -> str:
    """The CPU's model name ('model name' of /proc/cpuinfo on Linux)."""
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or 'unknown'


# the CPU features the native kernels and the int8 peers choose by
SIMD_FLAGS = ('avx2', 'avx512f', 'avx512_vpopcntdq', 'avx512_vnni',
              'avx512_bf16', 'amx_tile', 'asimd', 'sve')


def checkout_commit() -> str:
    """The commit of the git checkout this mmbireal runs from
    (``'ca49d37'``, ``'ca49d37-dirty'`` with local changes), or ``''`` for
    an installed wheel or without git."""
    if not osp.exists(osp.join(PACKAGE_PARENT, '.git')):  # not a wheel's
        return ''
    try:
        return subprocess.run(
            ['git', '-C', PACKAGE_PARENT, 'describe', '--always', '--dirty',
             '--exclude=*'],
            capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ''


def machine_summary() -> str:
    """One line for a benchmark's output: the CPU, its cores and SIMD
    flags, torch, and the checkout's commit, so that a saved output says
    what it was measured on."""
    flags = cpu_flags()
    simd = ' '.join(f for f in SIMD_FLAGS if f in flags) or 'flags unknown'
    return (f'{cpu_name()}; {os.cpu_count()} cores; {simd}; '
            f'{platform.machine()}; torch {torch.__version__}; '
            f'mmbireal {checkout_commit() or "(not a git checkout)"}')


def environment_summary(runner: Runner) -> str:
    """One line: device, processes, versions, seed and the log file."""
    if torch.cuda.is_available():
        device = f'CUDA ({torch.cuda.get_device_name(0)})'
    else:  # the CPU's name: float results differ between CPU models
        device = f'CPU ({cpu_name()}; CUDA not available)'
    processes = f'{runner.world_size} process' + (
        'es' if runner.world_size > 1 else '')
    if runner.distributed:
        processes += f' ({runner.launcher} launcher)'
    versions = ', '.join(
        f'{name} {_version(module)}'
        for name, module in (('PyTorch', 'torch'), ('MMEngine', 'mmengine'),
                             ('MMPretrain', 'mmpretrain'), ('mmbireal',
                                                            'mmbireal')))
    commit = checkout_commit()
    if commit:  # so that a run's log says which code trained it
        versions += f' (commit {commit})'
    python = sys.version.split()[0]
    return (f'{device}, {processes}; Python {python}, {versions}; seed '
            f'{runner.seed}; environment, config and hooks in full: '
            f'{runner.logger.log_file}')


class ConsoleSummaryRunner(Runner):
    """mmengine's :class:`~mmengine.runner.Runner` whose console shows
    one summary line in place of the environment, config and hook table.

    Everything else is the base class's: the log file under the work dir
    gets all messages, and what the run does is unchanged. The tools use
    it unless ``--verbose`` is given or the config sets ``runner_type``.

    Example:
        >>> runner = ConsoleSummaryRunner.from_cfg(cfg)  # doctest: +SKIP
    """

    def build_logger(self, *args, **kwargs) -> MMLogger:
        """mmengine's logger, its console handler filtered to the
        summary (the log file keeps everything)."""
        logger = super().build_logger(*args, **kwargs)
        for handler in logger.handlers:
            # the console handler; FileHandler subclasses StreamHandler
            if type(handler) is logging.StreamHandler and not any(
                    isinstance(f, ConsoleSummaryFilter)
                    for f in handler.filters):
                handler.addFilter(ConsoleSummaryFilter())
        return logger

    def _log_env(self, env_cfg: dict) -> None:
        super()._log_env(env_cfg)
        self.logger.info(environment_summary(self))
