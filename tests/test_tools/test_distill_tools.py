"""The ReActNet-style chain through the real tools on tiny Fashion-MNIST:
step 1 under DDP (2 CPU processes), step 2 from it, --resume, and a missing
teacher checkpoint as one line before training."""
import glob
import json
import os.path as osp

import pytest
import torch
from helpers import REPO, TINY_FMNIST, run_tool

from mmbireal.apis import build_model
from mmbireal.utils import load_checkpoint_file

CONFIGS = osp.join(REPO, 'configs', 'birealnet')


@pytest.fixture
def teacher(tmp_path):
    """A narrow real-valued teacher config (the clip pre-trained network
    of the chain at 8-64 channels) and a checkpoint of it."""
    cfg = tmp_path / 'teacher.py'
    cfg.write_text(
        f"_base_ = '{CONFIGS}/bireal18_clip-pre_1xb64_fmnist.py'\n"
        'model = dict(backbone=dict(stem_channels=8, base_channels=8), '
        'head=dict(in_channels=64))\n')
    torch.manual_seed(0)
    ckpt = str(tmp_path / 'teacher.pth')
    torch.save(dict(state_dict=build_model(str(cfg)).state_dict()), ckpt)
    return ['model.teacher_cfg=' + str(cfg), 'model.teacher_ckpt=' + ckpt]


def _train(config, work, *options, launcher=None, check=True):
    args = [f'{CONFIGS}/{config}', '--work-dir', work, '--cfg-options',
            *TINY_FMNIST, *options]
    if launcher:
        return run_tool(['bash', 'tools/dist_train.sh', args[0], '2',
                         *args[1:]], check=check, timeout=300)
    return run_tool(['tools/train.py', *args], check=check)


@pytest.mark.slow
def test_chain_ddp_step2_and_resume(fmnist_available, tmp_path, teacher):
    step1 = str(tmp_path / 'step1')
    proc = _train('bireal18-react_step1_1xb64_fmnist.py', step1,
                  *teacher, 'train_cfg.max_epochs=1', launcher='pytorch')
    log = proc.stdout + proc.stderr
    assert '2 processes (pytorch launcher)' in log
    saved = load_checkpoint_file(osp.join(step1, 'epoch_1.pth'))
    assert saved['meta']['iter'] == 2  # 64 images, 2 x 16 per step
    keys = saved['state_dict'].keys()
    assert not [k for k in keys if 'teacher' in k]
    assert 'backbone.layer1.0.act.bias' in keys
    assert 'backbone.layer1.0.block_act.prelu.weight' in keys

    step2 = str(tmp_path / 'step2')
    _train('bireal18-react_step2_1xb64_fmnist.py', step2, *teacher,
           f'load_from={step1}/epoch_1.pth', 'train_cfg.max_epochs=1')
    _train('bireal18-react_step2_1xb64_fmnist.py', step2, *teacher,
           'train_cfg.max_epochs=2', '--resume')
    resumed = load_checkpoint_file(osp.join(step2, 'epoch_2.pth'))
    assert resumed['meta']['iter'] == 8
    # the resumed run trained on the teacher's loss (no label loss)
    rows = []
    for path in glob.glob(osp.join(step2, '*', 'vis_data', 'scalars.json')):
        with open(path) as f:
            rows += [json.loads(line) for line in f]
    distill = [r for r in rows if 'loss_distill' in r]
    assert {r['iter'] for r in distill} >= {5, 6, 7, 8}
    assert all('loss_cls' not in r for r in distill)


@pytest.mark.slow
def test_missing_teacher_checkpoint_is_one_line_before_training(
        fmnist_available, tmp_path, teacher):
    work = str(tmp_path / 'work')
    proc = _train('bireal18-react_step1_1xb64_fmnist.py', work, teacher[0],
                  'model.teacher_ckpt=nothere/teacher.pth', check=False)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines[-1] == ('error: teacher_ckpt nothere/teacher.pth does not '
                         'exist (train or download the teacher first)')
    assert 'Traceback' not in proc.stderr
    assert 'Epoch(train)' not in proc.stdout + proc.stderr
    assert not osp.exists(osp.join(work, 'iter_1.pth'))
