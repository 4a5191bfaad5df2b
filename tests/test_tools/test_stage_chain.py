"""The paper's whole procedure through tools/train.py, each step
initialised from the previous one's checkpoint:
relu -> leaky-clip -> clip pre-training -> binary -> BN retrain."""
import os.path as osp

import pytest
import torch
from helpers import TINY_FMNIST, run_tool

from mmbireal.utils import load_checkpoint_file

STEPS = ('relu-pre_1xb64', 'leakyclip-pre_1xb64', 'clip-pre_1xb64', '1xb64',
         'bn-retrain_1xb64')
MISMATCH = ('missing keys', 'unexpected key', 'size mismatch')


def is_bn(key: str) -> bool:
    # stem bn1, block bn / bn1 / bn2, downsample.2
    name = key.rsplit('.', 2)[-2]
    return name.startswith('bn') or name == '2'


@pytest.mark.slow
def test_stage_chain_loads_cleanly_and_ends_with_pm1_weights(
        fmnist_available, tmp_path):
    previous = None
    for step in STEPS:
        work = str(tmp_path / step)
        options = [*TINY_FMNIST, 'train_cfg.max_epochs=1',
                   'param_scheduler.milestones=[1]'
                   if step == '1xb64' else 'randomness.seed=0',
                   f'load_from={previous}']
        if step == '1xb64':
            # a schedule with decay, as a config might inherit it
            options.append('optim_wrapper.optimizer.weight_decay=0.0001')
        proc = run_tool([
            'tools/train.py', f'configs/birealnet/bireal18_{step}_fmnist.py',
            '--work-dir', work, '--cfg-options', *options
        ])
        log = (proc.stdout + proc.stderr).lower()
        if previous is not None:
            assert f'load checkpoint from {previous}'.lower() in log
        for word in MISMATCH:
            assert word not in log, f'{step}: {word} when loading {previous}'
        previous = osp.join(work, 'epoch_1.pth')

    binary = load_checkpoint_file(
        str(tmp_path / '1xb64' / 'epoch_1.pth'))
    groups = binary['optimizer']['param_groups']
    no_decay = [g for g in groups if g.get('mmbireal_group')]
    assert [g['weight_decay'] for g in no_decay] == [0.0]
    assert len(no_decay[0]['params']) == 16
    assert all(g['weight_decay'] == 1e-4 for g in groups
               if not g.get('mmbireal_group'))

    final = load_checkpoint_file(previous)['state_dict']
    before = binary['state_dict']
    convs = [k for k in final if '.conv.weight' in k and 'layer' in k]
    assert len(convs) == 16
    for key in convs:
        assert set(final[key].unique().tolist()) <= {-1.0, 1.0}, key
    for key, value in final.items():
        if key.endswith('num_batches_tracked') or key in convs:
            continue
        if is_bn(key):
            continue
        # stem, 1x1 downsample convs and the classifier keep their values
        assert torch.equal(value, before[key]), key
    changed = [k for k in final if is_bn(k) and k.endswith('.weight')
               and not torch.equal(final[k], before[k])]
    assert changed, 'BatchNorm did not train during BN retrain'

    # resuming the BN-retrain step re-applies its state: still +-1 weights,
    # still lr 0 on everything but BatchNorm
    work = str(tmp_path / STEPS[-1])
    run_tool([
        'tools/train.py', f'configs/birealnet/bireal18_{STEPS[-1]}_fmnist.py',
        '--work-dir', work, '--resume', '--cfg-options', *TINY_FMNIST,
        'train_cfg.max_epochs=2'
    ])
    resumed = load_checkpoint_file(osp.join(work, 'epoch_2.pth'))
    for key, value in resumed['state_dict'].items():
        if not is_bn(key) and not key.endswith('num_batches_tracked'):
            assert torch.equal(value, final[key]), key
    frozen = [g for g in resumed['optimizer']['param_groups']
              if g.get('mmbireal_group') == 'bn_retrain_frozen']
    assert len(frozen) == 1 and frozen[0]['lr'] == 0
