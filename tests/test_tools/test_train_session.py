"""tools/train.py as a user meets it: what the console shows, the printed
accuracy after a resume (of a moved work dir), Ctrl-C and --resume with
nothing to resume."""
import glob
import os
import os.path as osp
import re
import shutil
import signal
import subprocess
import sys

import pytest
from helpers import REPO, TINY_FMNIST, popen_interruptible, run_tool

QUICK = 'configs/birealnet/bireal18_1xb64-quick_fmnist.py'
# 64 images of batch 16: 4 iterations per epoch, one validation iteration.
# The two epochs' scores must differ for the stale-value check to bite: lr
# 0.02, and BN running statistics that follow the batches (momentum 0.9;
# after 4 iterations at the default 0.1 they are still near their initial
# values, and a CI machine scored 18.75 in both epochs)
TWO_EPOCHS = [*TINY_FMNIST, 'train_cfg.max_epochs=2',
              'optim_wrapper.optimizer.lr=0.02',
              'model.backbone.norm_cfg.type=BN',
              'model.backbone.norm_cfg.momentum=0.9']


def train(work: str, *args: str, check: bool = True):
    return run_tool(['tools/train.py', QUICK, '--work-dir', work, *args],
                    check=check)


def val_scores(log: str) -> list:
    return re.findall(r'Epoch\(val\) \[\d+\]\[1/1\] +accuracy/top1: ([\d.]+)',
                      log)


def printed_top1(stdout: str) -> str:
    return re.search(r'^accuracy/top1: ([\d.]+)$', stdout, re.M).group(1)


@pytest.mark.slow
def test_console_and_accuracy_after_resuming_a_finished_run(
        fmnist_available, tmp_path):
    work = str(tmp_path / 'work')
    proc = train(work, '--cfg-options', *TWO_EPOCHS)
    # one screen: a summary line instead of environment, config and hooks
    for noise in ('System environment', 'Config:', 'GPU number',
                  'Hooks will be executed', 'PyTorch compiling details',
                  'FileClient', 'SyncBatchNorm'):
        assert noise not in proc.stdout, noise
    assert re.search(r'INFO - CPU \(.+; CUDA not available\), 1 process; '
                     r'Python [\d.]+, PyTorch .*seed 0; environment, config '
                     r'and hooks in full: \S+\.log$', proc.stdout, re.M)
    assert proc.stdout.count('Checkpoints will be saved to') == 1
    for warning in ('pkg_resources is deprecated',
                    'MultiScaleDeformableAttention', 'not writable'):
        assert warning not in proc.stderr, warning
    # ...and the log file keeps all of it, with gloo on a CPU machine
    (log_file, ) = glob.glob(osp.join(work, '*', '*.log'))
    with open(log_file) as f:
        full = f.read()
    for detail in ('System environment', 'Config:',
                   'Hooks will be executed', "dist_cfg: {'backend': 'gloo'}"):
        assert detail in full, detail

    epoch1, epoch2 = val_scores(proc.stdout)
    # the stale value would be epoch 1's; with these settings they differ
    assert epoch1 != epoch2
    assert printed_top1(proc.stdout) == f'{float(epoch2):.2f}'

    # resuming the finished run validates its final weights again, also
    # after its work dir was moved (last_checkpoint names the old path)
    moved = str(tmp_path / 'moved')
    shutil.move(work, moved)
    proc = train(moved, '--resume', '--verbose', '--cfg-options',
                 *TWO_EPOCHS)
    assert 'resumed epoch: 2, iter: 8' in proc.stdout
    assert val_scores(proc.stdout) == [epoch2]
    assert printed_top1(proc.stdout) == f'{float(epoch2):.2f}'
    # --verbose: mmengine's whole start-up log on the console
    assert 'System environment' in proc.stdout
    assert 'Hooks will be executed' in proc.stdout


def start_and_interrupt(work: str, after_iter: int, *options: str):
    """Start a tiny training, press Ctrl-C once the log shows iteration
    ``after_iter``; return (exit status, stdout, stderr)."""
    env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS='2')
    proc = popen_interruptible(
        [sys.executable, 'tools/train.py', QUICK, '--work-dir', work,
         '--cfg-options', *TINY_FMNIST, *options],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if f'Epoch(train) [1][{after_iter}/4]' in line:
            proc.send_signal(signal.SIGINT)
            break
    out, err = proc.communicate(timeout=300)
    return proc.returncode, ''.join(seen) + out, err


@pytest.mark.slow
def test_ctrl_c_names_the_checkpoint_and_the_command(fmnist_available,
                                                     tmp_path):
    work = str(tmp_path / 'work')
    code, out, err = start_and_interrupt(
        work, 2, 'default_hooks.iter_checkpoint.interval=1')
    assert code == 130, err[-3000:]
    assert 'Traceback' not in err, err[-3000:]
    (line, ) = err.strip().splitlines()
    # stopped after iteration 2 and its checkpoint
    checkpoint = osp.join(work, 'iter_2.pth')
    prefix = f'interrupted: resume from {checkpoint} with: '
    assert line.startswith(prefix), line
    command = line[len(prefix):]
    assert f'tools/train.py {QUICK} --work-dir {work}' in command
    assert command.endswith(' --resume')
    assert 'Epoch(train) [1][3/4]' not in out

    # the command it names continues from there
    proc = run_tool(command.split()[1:])
    assert 'resumed epoch: 0, iter: 2' in proc.stdout


@pytest.mark.slow
def test_ctrl_c_before_any_checkpoint(fmnist_available, tmp_path):
    work = str(tmp_path / 'work')
    code, _, err = start_and_interrupt(work, 1)
    assert code == 130, err[-3000:]
    assert err.strip().splitlines() == [
        f'interrupted before a checkpoint was saved in {work}: nothing to '
        'resume; start again with the same command'
    ]


@pytest.mark.slow
def test_resume_with_nothing_to_resume(fmnist_available, tmp_path):
    work = str(tmp_path / 'empty')
    proc = train(work, '--resume', '--cfg-options', *TINY_FMNIST,
                 check=False)
    assert proc.returncode == 2
    assert 'Traceback' not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f'error: --resume: no checkpoint to resume in {work} (neither the '
        'one its last_checkpoint names, at that path or in the work dir, nor '
        'an epoch_*.pth); to train from scratch, run the same command '
        'without --resume'
    ]
    assert 'Epoch(train)' not in proc.stdout  # it did not start training
    proc = train(work, '--resume', str(tmp_path / 'missing.pth'),
                 check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        f'error: --resume: checkpoint {tmp_path}/missing.pth does not exist')
