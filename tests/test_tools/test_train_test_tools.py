"""tools/train.py, --resume, tools/test.py and dist_train.sh, run for real."""
import glob
import json
import os
import os.path as osp
import re
import signal
import subprocess

import pytest
import torch
from helpers import (
    REPO,
    TINY_FMNIST,
    free_port,
    import_tool_file,
    popen_interruptible,
    run_tool,
)

from mmbireal.models.binarize_kernels import kernels_for
from mmbireal.utils import load_checkpoint_file

BIREAL18 = 'configs/birealnet/bireal18_8xb16_in1k.py'
QUICK = 'configs/birealnet/bireal18_1xb64-quick_fmnist.py'


def imagenet_options(root: str, max_epochs: int) -> list:
    return [
        'load_from=None', f'train_dataloader.dataset.data_root={root}',
        f'val_dataloader.dataset.data_root={root}',
        f'test_dataloader.dataset.data_root={root}',
        'train_dataloader.batch_size=4', 'val_dataloader.batch_size=4',
        'test_dataloader.batch_size=4', 'train_dataloader.num_workers=0',
        'val_dataloader.num_workers=0', 'test_dataloader.num_workers=0',
        f'train_cfg.max_epochs={max_epochs}',
        'default_hooks.logger.interval=1'
    ]


@pytest.mark.slow
def test_train_resume_test_on_imagenet_folder(tiny_imagenet, tmp_path):
    work = str(tmp_path / 'work')
    run_tool([
        'tools/train.py', BIREAL18, '--work-dir', work, '--cfg-options',
        *imagenet_options(tiny_imagenet, 1)
    ])
    first = osp.join(work, 'epoch_1.pth')
    assert osp.isfile(first)
    ckpt = load_checkpoint_file(first)
    assert ckpt['meta']['epoch'] == 1
    # 2 iterations of 4 images: the paper's 224 px crops really went through
    assert ckpt['meta']['iter'] == 2

    # resume continues from the checkpoint (epoch 2 only, not from scratch)
    proc = run_tool([
        'tools/train.py', BIREAL18, '--work-dir', work, '--resume',
        '--cfg-options', *imagenet_options(tiny_imagenet, 2)
    ])
    log = proc.stdout + proc.stderr
    last_val = re.search(r'^accuracy/top1: ([0-9.]+)$', proc.stdout, re.M)
    assert 'resumed epoch: 1, iter: 2' in log
    assert 'Epoch(train) [1]' not in log
    second = load_checkpoint_file(osp.join(work, 'epoch_2.pth'))
    assert second['meta']['iter'] == 4
    assert not torch.equal(ckpt['state_dict']['backbone.layer1.0.conv.weight'],
                           second['state_dict']['backbone.layer1.0.conv.weight'])

    # the resumed optimizer kept the zero-decay group of WeightDecayZeroHook
    groups = second['optimizer']['param_groups']
    tagged = [g for g in groups if g.get('mmbireal_group')]
    assert len(tagged) == 1 and tagged[0]['weight_decay'] == 0
    assert len(tagged[0]['params']) == 16  # the 16 binary 3x3 convs

    proc = run_tool([
        'tools/test.py', BIREAL18, osp.join(work, 'epoch_2.pth'),
        '--work-dir', work, '--cfg-options',
        *imagenet_options(tiny_imagenet, 2)
    ])
    top1 = re.search(r'^accuracy/top1: ([0-9.]+)$', proc.stdout, re.M)
    # the same checkpoint on the same images as the run's last validation
    assert top1 and last_val and top1.group(1) == last_val.group(1)
    assert 'accuracy/top5' in proc.stdout


def dist_train(config: str, work: str, *options: str):
    return run_tool([
        'bash', 'tools/dist_train.sh', f'configs/birealnet/{config}', '2',
        '--work-dir', work, '--cfg-options', *TINY_FMNIST,
        'train_cfg.max_epochs=1', *options
    ], timeout=300)


@pytest.mark.slow
def test_dist_train_two_processes_on_cpu_then_bn_retrain(
        fmnist_available, tmp_path):
    work = str(tmp_path / 'binary')
    proc = dist_train('bireal18_1xb64_fmnist.py', work, 'load_from=None')
    log = proc.stdout + proc.stderr
    # the console's summary line (mmengine's block is in the log file)
    assert re.search(r'CPU \(.+; CUDA not available\), 2 processes '
                     r'\(pytorch launcher\)', log)
    binary = load_checkpoint_file(osp.join(work, 'epoch_1.pth'))
    # 64 images, 16 per process and step, 2 processes: 2 iterations
    assert binary['meta']['iter'] == 2
    assert not any(k.startswith('module.') for k in binary['state_dict'])

    retrain = str(tmp_path / 'retrain')
    proc = dist_train('bireal18_bn-retrain_1xb64_fmnist.py', retrain,
                      f'load_from={work}/epoch_1.pth')
    log = proc.stdout + proc.stderr
    assert 'are -1 or +1 and identical on all 2 rank(s)' in log
    final = load_checkpoint_file(osp.join(retrain, 'epoch_1.pth'))
    convs = [k for k in final['state_dict']
             if 'layer' in k and k.endswith('.conv.weight')]
    assert len(convs) == 16
    for key in convs:
        values = final['state_dict'][key].unique().tolist()
        assert set(values) <= {-1.0, 1.0}, key
        expected = torch.where(binary['state_dict'][key] >= 0, 1.0, -1.0)
        assert torch.equal(final['state_dict'][key], expected), key


@pytest.mark.slow
def test_missing_load_from_is_a_clear_error(tmp_path):
    proc = run_tool(['tools/train.py', BIREAL18, '--work-dir',
                     str(tmp_path)], check=False)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith('error: load_from checkpoint work_dirs/')
    assert 'load_from=None' in last


def logged_losses(work_dir: str) -> list:
    """The training loss of every iteration, from mmengine's scalars.json."""
    (path, ) = glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))
    with open(path) as f:
        rows = [json.loads(line) for line in f]
    return [row['loss'] for row in rows if 'loss' in row]


@pytest.mark.slow
def test_ddp_loss_curve_equals_single_process(fmnist_available, tmp_path):
    """2 processes x 8 images train and log as 1 process x 16, 4 steps."""
    config = tmp_path / 'deterministic.py'
    config.write_text(
        f"_base_ = '{REPO}/configs/birealnet/bireal18_1xb64_fmnist.py'\n"
        # no random augmentation; BN on running statistics, so each rank's
        # forward equals the single process's on the same images
        'train_dataloader = dict(dataset=dict(pipeline='
        '{{_base_.test_pipeline}}))\n'
        'model = dict(backbone=dict(norm_eval=True))\n')
    options = [*TINY_FMNIST, 'load_from=None', 'train_cfg.max_epochs=1',
               'randomness.seed=0']
    single = str(tmp_path / 'single')
    run_tool(['tools/train.py', str(config), '--work-dir', single,
              '--cfg-options', *options])
    ddp = str(tmp_path / 'ddp')
    run_tool(['bash', 'tools/dist_train.sh', str(config), '2', '--work-dir',
              ddp, '--cfg-options', *options,
              'train_dataloader.batch_size=8'], timeout=300)
    a = load_checkpoint_file(osp.join(single, 'epoch_1.pth'))
    b = load_checkpoint_file(osp.join(ddp, 'epoch_1.pth'))
    # 64 images: 4 steps each, the same weights after them (a different lr
    # or unaveraged gradients would fail)
    assert a['meta']['iter'] == b['meta']['iter'] == 4
    for key, value in a['state_dict'].items():
        assert torch.allclose(value, b['state_dict'][key], atol=1e-5), key
    # the logged curve is the whole batch's (MeanLossOverRanksHook), not
    # rank 0's 8 images
    single_losses, ddp_losses = logged_losses(single), logged_losses(ddp)
    assert len(single_losses) == len(ddp_losses) == 4
    assert ddp_losses == pytest.approx(single_losses, rel=1e-5)
    assert len(set(single_losses)) == 4  # the curve really moves


@pytest.mark.slow
def test_benchmark_train_splits_the_cost_and_saves_no_extra_tensors():
    proc = run_tool([
        'tools/analysis_tools/benchmark_train.py', '--size', '32',
        '--batch', '2', '--iters', '2', '--warmup', '1',
        '--with-float-bireal', '--profile', '1'
    ])
    ratios = dict(
        re.findall(r'^time ratio (\S+ / \S+): ([\d.]+) ', proc.stdout, re.M))
    assert set(ratios) == {
        'Bi-Real-18 / ResNet-18', 'float-Bi-Real-18 / ResNet-18',
        'Bi-Real-18 / float-Bi-Real-18'
    }
    assert all(float(r) > 0 for r in ratios.values())
    # At 32 px the weights dominate what autograd keeps: a binarized copy
    # of them kept for backward would double Bi-Real's figure.
    saved = float(re.search(r'saved-for-backward ratio: ([\d.]+)',
                            proc.stdout).group(1))
    assert saved < 1.05
    # --profile: every kernel of a training step shows up in the profile
    assert re.search(r'^binarization kernels: [\d.]+ ms/step', proc.stdout,
                     re.M)
    if kernels_for(torch.zeros(1)) is not None:
        for kernel in ('sign', 'mul_surrogate_grad', 'binarize_weight',
                       'weight_grad'):
            # 16 binary convs: forward and backward, or backward only
            calls = 16 if kernel in ('mul_surrogate_grad',
                                     'weight_grad') else 32
            assert re.search(
                rf'^mmbireal::{kernel} +[\d.]+ ms/step \({calls} calls\)',
                proc.stdout, re.M), kernel


@pytest.mark.parametrize('argv, message', [
    (['--batch', '-1'], '--batch must be at least 1, got -1'),
    (['--size', '4'], '--size must be at least 8, got 4'),
    (['--warmup', '-2'], '--warmup must be at least 0, got -2'),
    (['--device', 'gpu'], '--device gpu is not available here'),
    (['--device', 'cuda:99'], '--device cuda:99 is not available here'),
])
def test_benchmark_train_answers_bad_values_in_one_line(argv, message,
                                                         capsys):
    tool = import_tool_file('tools', 'analysis_tools', 'benchmark_train.py')
    with pytest.raises(SystemExit) as info:
        tool.parse_args(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f'error: {message}') and err.count('\n') == 1


@pytest.mark.slow
def test_benchmark_train_rejects_a_single_iteration():
    proc = run_tool(['tools/analysis_tools/benchmark_train.py', '--iters',
                     '1'], check=False)
    assert proc.returncode == 2
    assert '--iters must be at least 2, got 1' in proc.stderr


@pytest.mark.slow
def test_ctrl_c_under_dist_train_names_the_launcher_command(
        fmnist_available, tmp_path):
    """torchrun puts its workers in sessions of their own: Ctrl-C reaches
    the agent, which passes it on; the rank-0 worker prints the line and
    the agent its exit status, without its traceback."""
    work = str(tmp_path / 'work')
    options = [o.replace('indices=64', 'indices=640') for o in TINY_FMNIST]
    proc = popen_interruptible(
        ['bash', 'tools/dist_train.sh', QUICK, '2', '--work-dir', work,
         '--cfg-options', *options,
         'default_hooks.iter_checkpoint.interval=1'],
        cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO, PORT=str(free_port())),
        text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    for line in proc.stdout:
        if 'Epoch(train)' in line and '[1][ 3/20]' in line:
            proc.send_signal(signal.SIGINT)
            break
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err[-3000:]
    assert 'Traceback' not in err and 'SignalException' not in err, err
    line = err.strip().splitlines()[-1]
    match = re.match(r'interrupted: resume from (\S+) with: bash '
                     rf'tools/dist_train.sh {QUICK} 2 --work-dir {work} .*'
                     r' --resume$', line)
    assert match, line
    assert osp.isfile(match.group(1))
