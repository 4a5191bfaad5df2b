"""Helpers for the tests that run the real tools on tiny data."""
import contextlib
import functools
import glob
import importlib
import os
import os.path as osp
import signal
import socket
import subprocess
import sys
from typing import Any, Iterator, List, Sequence

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
FMNIST_ROOT = '/usr/share/datasets/fashion-mnist'

# A narrow Bi-Real-18 (8-64 channels) keeps every tool run to seconds.
TINY_FMNIST = [
    'model.backbone.stem_channels=8', 'model.backbone.base_channels=8',
    'model.head.in_channels=64', 'train_dataloader.batch_size=16',
    'train_dataloader.num_workers=0', 'val_dataloader.num_workers=0',
    'test_dataloader.num_workers=0', 'train_dataloader.dataset.indices=64',
    'val_dataloader.dataset.indices=64',
    'test_dataloader.dataset.indices=64', 'default_hooks.logger.interval=1'
]


# conftest.py clears this for tests without the `slow` marker, so that
# `pytest -m "not slow"` never starts a tool in a subprocess
SUBPROCESSES_ALLOWED = True


def run_tool(args: List[str], check: bool = True, timeout: int = 600,
             pythonpath: Sequence[str] = ()) -> subprocess.CompletedProcess:
    """Run ``python tools/...`` (or bash) from the repo root."""
    if not SUBPROCESSES_ALLOWED:
        raise AssertionError('this test runs a tool in a subprocess: mark '
                             'it @pytest.mark.slow')
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        [REPO, *pythonpath, env.get('PYTHONPATH', '')])
    env.setdefault('OMP_NUM_THREADS', '2')
    env['PYTHON'] = sys.executable  # for the shell launchers
    env['PORT'] = str(free_port())  # for torchrun in dist_*.sh
    cmd = args if args[0] == 'bash' else [sys.executable, *args]
    proc = subprocess.run(
        cmd, cwd=REPO, env=env, capture_output=True, text=True,
        timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(
            f'{" ".join(cmd)} exited {proc.returncode}\n'
            f'--- stdout ---\n{proc.stdout[-4000:]}\n'
            f'--- stderr ---\n{proc.stderr[-4000:]}')
    return proc


def free_port() -> int:
    """A TCP port no one listens on now: each torchrun launch gets its own,
    so launches in parallel test workers, or one right after another, never
    meet on one."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def popen_interruptible(cmd: List[str], **kwargs) -> subprocess.Popen:
    """``subprocess.Popen`` whose process starts with SIGINT at its default,
    as in a terminal, also when pytest itself ignores it (a shell script's
    background job inherits SIGINT ignored; a handler, unlike that, is
    reset to the default by exec)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return subprocess.Popen(cmd, **kwargs)
    finally:
        signal.signal(signal.SIGINT, previous)


# The quick Fashion-MNIST config at 16-128 channels: seconds to build,
# export and run at 28 px (the deployment tests' model).
FMNIST_QUICK_CFG = osp.join(REPO, 'configs', 'birealnet',
                            'bireal18_1xb64-quick_fmnist.py')
NARROW = {
    'model.backbone.stem_channels': 16,
    'model.backbone.base_channels': 16,
    'model.head.in_channels': 128,
}


def small_fmnist_model(**extra):
    """The narrow Bi-Real-18 of :data:`FMNIST_QUICK_CFG`, seeded random
    weights and random BNs (``extra``: more config entries)."""
    import torch

    from mmbireal.apis import build_model
    torch.manual_seed(0)
    model = build_model(FMNIST_QUICK_CFG, cfg_options={**NARROW, **extra})
    randomize_bn(model)
    return model


# ReActNet's parts on every binary conv and block (config entries)
REACT_PARTS = {
    'model.backbone.sign_bias_cfg': dict(type='LearnableBias'),
    'model.backbone.block_act_cfg': dict(type='RPReLU'),
}


def small_react_model(cps: int = 1, **extra):
    """:func:`small_fmnist_model` with ReActNet's parts, their shifts and
    slopes random (``cps``: convs per shortcut)."""
    import torch

    from mmbireal.models import LearnableBias, RPReLU
    model = small_fmnist_model(
        **REACT_PARTS, **{'model.backbone.convs_per_shortcut': cps}, **extra)
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, LearnableBias):
                m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.5)
            elif isinstance(m, RPReLU):
                # trained slopes may be negative or above 1
                m.prelu.weight.uniform_(-0.5, 1.5, generator=gen)
    return model


def randomize_bn(model, seed: int = 0) -> None:
    """Random BN statistics and affine parameters, so tests see real BNs."""
    import torch
    from torch.nn.modules.batchnorm import _BatchNorm
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, _BatchNorm):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=gen) * 0.3)
                m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
                m.weight.copy_(torch.rand(n, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(n, generator=gen) * 0.3)


@contextlib.contextmanager
def failing_native_build(monkeypatch, module, build_name: str,
                         lazy) -> Iterator[None]:
    """Within the block, building the native library ``lazy`` (a
    ``LazyLibrary`` whose build calls ``module.<build_name>``) fails as
    with a broken compiler; on leaving it, exactly one one-line
    RuntimeWarning must have named the failure. ``lazy`` is forgotten
    before and after, so later tests build the real library."""
    import pytest

    from mmbireal.utils.native import NativeBuildError

    def broken():
        raise NativeBuildError('g++ failed: boom')

    monkeypatch.delenv(lazy.env_var, raising=False)
    monkeypatch.setattr(module, build_name, broken)
    lazy.reset()
    try:
        with pytest.warns(RuntimeWarning) as record:
            yield
        # (other libraries' import-time warnings may come too)
        ours = [str(r.message) for r in record
                if str(r.message).startswith(lazy.what)]
        assert len(ours) == 1, ours
        assert '\n' not in ours[0] and 'g++ failed: boom' in ours[0]
        assert lazy.fallback in ours[0]
    finally:
        lazy.reset()


def tiny_random_checkpoint(root) -> tuple:
    """A narrow quick-start config (8-64 channels) in ``root`` and a
    checkpoint of its model with random weights and BN statistics;
    returns both paths."""
    import torch
    from mmengine.config import Config
    from mmpretrain import get_model
    config = osp.join(str(root), 'tiny.py')
    with open(config, 'w') as f:
        f.write(f"_base_ = '{REPO}/configs/birealnet/"
                "bireal18_1xb64-quick_fmnist.py'\n"
                'model = dict(backbone=dict(stem_channels=8, '
                'base_channels=8), head=dict(in_channels=64))\n')
    torch.manual_seed(0)
    model = get_model(Config.fromfile(config))
    randomize_bn(model)
    checkpoint = osp.join(str(root), 'random.pth')
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, checkpoint)
    return config, checkpoint


def import_deployment_tool(name: str):
    """A module of tools/deployment (not a package), e.g.
    ``'benchmark_binary'``, imported as the tool's own script does."""
    sys.path.insert(0, osp.join(REPO, 'tools', 'deployment'))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.pop(0)


def import_tool_file(*path: str):
    """A tool script under the repo (e.g. ``'tools', 'reproduce',
    'collect_study.py'``), imported in-process as a module of its name."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        osp.splitext(path[-1])[0], osp.join(REPO, *path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@functools.lru_cache(maxsize=None)
def _birealnet_configs() -> tuple:
    from mmengine.config import Config
    paths = sorted(glob.glob(osp.join(REPO, 'configs', 'birealnet',
                                      '*.py')))
    return tuple((osp.splitext(osp.basename(p))[0], p, Config.fromfile(p))
                 for p in paths)


def birealnet_configs() -> list:
    """``(name, path, Config)`` of every config in configs/birealnet, read
    once per test session; copies, so a test may change them."""
    import copy
    return [(n, p, copy.deepcopy(c)) for n, p, c in _birealnet_configs()]


def native_library_or_skip(lazy) -> Any:
    """The native library ``lazy`` (a ``LazyLibrary``) for a test that
    needs it. Skipped only where it is switched off (its environment
    variable set to ``torch``) or no C++ compiler exists; where a compiler
    exists a failed build fails the test, so a compile error in ``csrc/``
    cannot pass as a skip."""
    import shlex
    import shutil

    import pytest

    from mmbireal.utils.native import NativeBuildError
    if os.environ.get(lazy.env_var) == 'torch':
        pytest.skip(f'{lazy.env_var}=torch switches {lazy.what} off')
    library = lazy.get()
    if library is not None:
        return library
    cxx = shlex.split(os.environ.get('CXX') or 'g++')
    if not cxx or shutil.which(cxx[0]) is None:
        pytest.skip(f'no C++ compiler: {lazy.what} is not built')
    try:
        return lazy.build()
    except NativeBuildError as e:
        pytest.fail(f'{lazy.what} does not build with {cxx[0]}: {e}')


@functools.lru_cache(maxsize=None)
def counted(config: str, side: int = 224) -> Any:
    """``config_complexity`` of a config file at ``side`` px, computed once
    per test process (the paper's table and the metafile count the same
    224 px configs)."""
    from mmbireal.analysis import config_complexity
    if '::' not in config:  # else a config of an installed package
        config = osp.abspath(osp.join(REPO, config))
    return config_complexity(config, (side, side))
