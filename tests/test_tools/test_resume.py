"""A run SIGKILLed mid-epoch and resumed ends with the same weights as an
uninterrupted one, also in the BN-retrain step."""
import os.path as osp

import pytest
import torch
from helpers import REPO, TINY_FMNIST, run_tool

from mmbireal.utils import load_checkpoint_file

TESTS = osp.join(REPO, 'tests')
# 64 images, batch 16: 4 iterations per epoch; a checkpoint every iteration
DETERMINISTIC = [
    *TINY_FMNIST, 'randomness.seed=0', 'randomness.deterministic=True',
    'default_hooks.iter_checkpoint.interval=1'
]


def write_config(path, base: str, kill_at: int = 0, hooks=()) -> str:
    hooks = list(hooks)
    if kill_at:
        hooks.append(dict(type='KillAtIterHook', at_iter=kill_at))
    path.write_text(
        f"_base_ = '{REPO}/configs/birealnet/{base}'\n"
        "custom_imports = dict(imports=['mmbireal', 'kill_hook'], "
        'allow_failed_imports=False)\n'
        f'custom_hooks = {hooks!r}\n')
    return str(path)


def train(config: str, work: str, *options: str, check: bool = True):
    return run_tool(['tools/train.py', config, '--work-dir', work,
                     *options], check=check, pythonpath=[TESTS])


def assert_same_weights(a: str, b: str) -> None:
    sa = load_checkpoint_file(a)['state_dict']
    sb = load_checkpoint_file(b)['state_dict']
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.allclose(sa[key].double(), sb[key].double(), rtol=0,
                              atol=1e-6), key


def interrupted_then_resumed(config_dir, base, hooks, kill_at, options,
                             work) -> str:
    killer = write_config(config_dir / f'kill_{kill_at}.py', base, kill_at,
                          hooks)
    proc = train(killer, work, '--cfg-options', *options, check=False)
    assert proc.returncode == -9, proc.stderr[-2000:]  # SIGKILL
    plain = write_config(config_dir / 'plain.py', base, 0, hooks)
    proc = train(plain, work, '--resume', '--cfg-options', *options)
    return proc.stdout + proc.stderr


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_matches_uninterrupted(
        fmnist_available, tmp_path):
    binary_hooks = [dict(type='WeightDecayZeroHook')]
    options = [*DETERMINISTIC, 'load_from=None', 'train_cfg.max_epochs=2',
               'param_scheduler.milestones=[1]']
    base = 'bireal18_1xb64_fmnist.py'
    whole = str(tmp_path / 'whole')
    train(write_config(tmp_path / 'plain.py', base, 0, binary_hooks), whole,
          '--cfg-options', *options)

    # killed in epoch 2 after iteration 6 (its 2nd batch), then resumed
    parts = str(tmp_path / 'parts')
    log = interrupted_then_resumed(tmp_path, base, binary_hooks, 6, options,
                                   parts)
    assert 'resumed epoch: 1, iter: 6' in log
    assert_same_weights(osp.join(whole, 'epoch_2.pth'),
                        osp.join(parts, 'epoch_2.pth'))

    # the BN-retrain step from that checkpoint, killed after its iteration 2
    retrain = 'bireal18_bn-retrain_1xb64_fmnist.py'
    hooks = [dict(type='BNRetrainHook')]
    options = [*DETERMINISTIC,
               f'load_from={osp.join(whole, "epoch_2.pth")}']
    whole_bn = str(tmp_path / 'whole_bn')
    train(write_config(tmp_path / 'plain.py', retrain, 0, hooks), whole_bn,
          '--cfg-options', *options)
    parts_bn = str(tmp_path / 'parts_bn')
    log = interrupted_then_resumed(tmp_path, retrain, hooks, 2, options,
                                   parts_bn)
    assert 'resumed epoch: 0, iter: 2' in log
    assert_same_weights(osp.join(whole_bn, 'epoch_1.pth'),
                        osp.join(parts_bn, 'epoch_1.pth'))
    final = load_checkpoint_file(osp.join(parts_bn, 'epoch_1.pth'))
    conv = final['state_dict']['backbone.layer1.0.conv.weight']
    assert set(conv.unique().tolist()) <= {-1.0, 1.0}


@pytest.mark.slow
def test_quick_start_settings_resume_exactly(fmnist_available, tmp_path):
    """The quick start's own loader settings (a worker, no persistent
    workers) with its Adam + cosine schedule: killed in epoch 2 and resumed
    it ends with the uninterrupted run's weights."""
    options = [*DETERMINISTIC, 'train_dataloader.num_workers=1',
               'train_cfg.max_epochs=2']
    base = 'bireal18_1xb64-quick_fmnist.py'
    hooks = [dict(type='WeightDecayZeroHook')]
    whole = str(tmp_path / 'whole')
    train(write_config(tmp_path / 'plain.py', base, 0, hooks), whole,
          '--cfg-options', *options)
    parts = str(tmp_path / 'parts')
    log = interrupted_then_resumed(tmp_path, base, hooks, 6, options, parts)
    assert 'resumed epoch: 1, iter: 6' in log
    assert_same_weights(osp.join(whole, 'epoch_2.pth'),
                        osp.join(parts, 'epoch_2.pth'))


def test_quick_start_config_checkpoints_within_its_run():
    from mmengine.config import Config
    cfg = Config.fromfile(
        osp.join(REPO, 'configs/birealnet/bireal18_1xb64-quick_fmnist.py'))
    iterations = 12000 // cfg.train_dataloader.batch_size  # per epoch
    assert cfg.train_dataloader.persistent_workers is False
    assert cfg.default_hooks.iter_checkpoint.interval < iterations
    # progress lines during an epoch and during the 40-batch validation
    val_batches = -(-10000 // cfg.val_dataloader.batch_size)
    assert cfg.default_hooks.logger.interval <= val_batches // 2


def test_every_config_with_the_exact_loop_resumes_exactly(monkeypatch):
    """The README's promise for all our configs: as tools/train.py runs
    them, the exact-resume loop gets no persistent training workers (they
    would keep their random state across the resume) and an iteration
    checkpoint."""
    import importlib.util
    import sys

    from helpers import birealnet_configs
    spec = importlib.util.spec_from_file_location(
        'train_tool', osp.join(REPO, 'tools', 'train.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    checked = []
    for _, path, cfg in birealnet_configs():
        monkeypatch.setattr(sys, 'argv', ['train.py', path])
        cfg = tool.merge_args(cfg, tool.parse_args())
        if cfg.train_cfg.get('type') != 'ResumableEpochBasedTrainLoop':
            continue
        loader = cfg.train_dataloader
        assert not (loader.num_workers and loader.persistent_workers), path
        assert cfg.default_hooks.iter_checkpoint.by_epoch is False, path
        checked.append(osp.basename(path))
    assert 'bireal18_8xb16_in1k.py' in checked
    assert 'bireal18_1xb64_fmnist.py' in checked
