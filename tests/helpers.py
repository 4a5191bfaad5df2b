"""Helpers for the tests that run the real tools on tiny data."""
import os
import os.path as osp
import subprocess
import sys
from typing import List, Sequence

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


def run_tool(args: List[str], check: bool = True, timeout: int = 600,
             pythonpath: Sequence[str] = ()) -> subprocess.CompletedProcess:
    """Run ``python tools/...`` (or bash) from the repo root."""
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        [REPO, *pythonpath, env.get('PYTHONPATH', '')])
    env.setdefault('OMP_NUM_THREADS', '2')
    env['PYTHON'] = sys.executable  # for the shell launchers
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
