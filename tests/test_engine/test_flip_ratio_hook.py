"""FlipRatioHook: per-epoch sign flips of binary weights, logged per stage."""
import glob
import json
import os.path as osp

import pytest
from helpers import TINY_FMNIST, run_tool

from mmbireal.utils import load_checkpoint_file

pytestmark = pytest.mark.slow


def _scalars(work_dir: str) -> list:
    records = []
    for path in sorted(glob.glob(osp.join(work_dir, '*', 'vis_data',
                                          'scalars.json'))):
        with open(path) as f:
            records += [json.loads(line) for line in f]
    return records


def _binary_signs(path: str) -> dict:
    state = load_checkpoint_file(path)
    return {
        k: v >= 0
        for k, v in state['state_dict'].items()
        if k.startswith('backbone.layer') and k.endswith('.conv.weight')
    }


def _train(tmp_path, epochs: int, lr: float) -> str:
    """A tiny binary Fashion-MNIST run from scratch; its work dir."""
    work = str(tmp_path / 'run')
    run_tool([
        'tools/train.py', 'configs/birealnet/bireal18_1xb64_fmnist.py',
        '--work-dir', work, '--cfg-options', *TINY_FMNIST,
        'load_from=None', f'train_cfg.max_epochs={epochs}',
        f'optim_wrapper.optimizer.lr={lr}'
    ])
    return work


def test_flip_ratio_matches_the_checkpoints(tmp_path):
    work = _train(tmp_path, epochs=2, lr=0.5)
    logged = {r['step']: r for r in _scalars(work) if 'flip_ratio/all' in r}
    assert sorted(logged) == [1, 2]
    before, after = (_binary_signs(osp.join(work, f'epoch_{e}.pth'))
                     for e in (1, 2))
    flipped = sum(int((before[k] != after[k]).sum()) for k in before)
    total = sum(v.numel() for v in before.values())
    assert flipped > 0
    assert logged[2]['flip_ratio/all'] == pytest.approx(flipped / total)
    per_stage = {
        f'flip_ratio/layer{i}': sum(
            int((before[k] != after[k]).sum())
            for k in before if k.startswith(f'backbone.layer{i}.')) /
        sum(v.numel() for k, v in before.items()
            if k.startswith(f'backbone.layer{i}.'))
        for i in range(1, 5)
    }
    for key, value in per_stage.items():
        assert logged[2][key] == pytest.approx(value)


def test_no_flips_at_zero_lr(tmp_path):
    work = _train(tmp_path, epochs=1, lr=0.0)
    logged = [r for r in _scalars(work) if 'flip_ratio/all' in r]
    assert [r['flip_ratio/all'] for r in logged] == [0.0]
