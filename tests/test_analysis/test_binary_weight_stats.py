"""binary_weight_stats.py and the lr-alpha config of the magnitude study."""
import pytest
import torch
from helpers import TINY_FMNIST, run_tool

from mmbireal.utils import load_checkpoint_file

pytestmark = pytest.mark.slow
CONFIG = 'configs/birealnet/bireal18_1xb64_fmnist.py'
LR_ALPHA = 'configs/birealnet/bireal18_lr-alpha_1xb64_fmnist.py'


def test_inverse_mean_alpha_and_the_lr_alpha_run(tmp_path):
    work = str(tmp_path / 'run')
    run_tool(['tools/train.py', CONFIG, '--work-dir', work, '--cfg-options',
              *TINY_FMNIST, 'load_from=None', 'train_cfg.max_epochs=1'])
    ckpt = f'{work}/epoch_1.pth'
    state = load_checkpoint_file(ckpt)['state_dict']
    alphas = torch.cat([
        w.abs().flatten(1).mean(1).double() for k, w in state.items()
        if k.startswith('backbone.layer') and k.endswith('.conv.weight')
    ])
    out = run_tool(['tools/analysis_tools/binary_weight_stats.py', CONFIG,
                    ckpt, '--inverse-mean', '--cfg-options',
                    *TINY_FMNIST]).stdout.strip()
    assert float(out) == pytest.approx(1 / alphas.mean().item(), rel=1e-5)

    # the lr-alpha config needs the value: one line without it ...
    proc = run_tool(['tools/train.py', LR_ALPHA, '--work-dir',
                     str(tmp_path / 'bad'), '--cfg-options', *TINY_FMNIST,
                     f'load_from={ckpt}'], check=False)
    assert proc.returncode == 2
    assert 'binary_lr_mult must be a positive number' in proc.stderr
    assert 'Traceback' not in proc.stderr
    # ... and the binary weights train at lr x mult with it
    run_tool(['tools/train.py', LR_ALPHA, '--work-dir',
              str(tmp_path / 'ok'), '--cfg-options', *TINY_FMNIST,
              f'load_from={ckpt}', 'train_cfg.max_epochs=1',
              f'optim_wrapper.paramwise_cfg.binary_lr_mult={out}'])
    saved = load_checkpoint_file(f'{tmp_path}/ok/epoch_1.pth')
    lrs = sorted(g['lr'] for g in saved['optimizer']['param_groups'])
    assert lrs[-1] == pytest.approx(lrs[0] * float(out), rel=1e-6)
