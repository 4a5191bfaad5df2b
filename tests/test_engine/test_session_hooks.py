"""The hooks tools/train.py adds to every run, and the mean loss over ranks,
without a subprocess."""
from types import SimpleNamespace

import pytest
import torch
from tiny_runner import TinyNet, log_text, make_runner, optim_cfg

from mmbireal.engine.hooks import mean_loss_hook
from mmbireal.engine.hooks.mean_loss_hook import MeanLossOverRanksHook
from mmbireal.engine.hooks.session_hooks import (
    BinaryWeightDecayCheckHook,
    FinalValidationHook,
)


def as_rank_0_of_2(monkeypatch, other_rank: dict) -> None:
    """All-reduce with a second rank whose scalars are ``other_rank``."""
    monkeypatch.setattr(mean_loss_hook, 'get_world_size', lambda: 2)

    def all_reduce(values, op):
        assert op == 'mean'
        other = torch.tensor(list(other_rank.values()))
        values.copy_((values + other) / 2)

    monkeypatch.setattr(mean_loss_hook, 'all_reduce', all_reduce)


def test_losses_are_logged_as_their_mean_over_ranks(monkeypatch):
    as_rank_0_of_2(monkeypatch, {'loss': 3.0, 'loss_cls': 1.0})
    outputs = {'loss': torch.tensor(1.0), 'loss_cls': torch.tensor([0.5]),
               'logits': torch.ones(4, 3)}
    MeanLossOverRanksHook().after_train_iter(None, 0, outputs=outputs)
    assert outputs['loss'].item() == 2.0
    assert outputs['loss_cls'].item() == 0.75
    assert torch.equal(outputs['logits'], torch.ones(4, 3))  # not a scalar


def test_a_nan_on_one_rank_reaches_every_rank(monkeypatch):
    """So every rank's StopOnInvalidLossHook stops, not rank 1's alone."""
    as_rank_0_of_2(monkeypatch, {'loss': float('nan')})
    outputs = {'loss': torch.tensor(0.7)}
    MeanLossOverRanksHook().after_train_iter(None, 0, outputs=outputs)
    assert torch.isnan(outputs['loss'])


def test_one_process_logs_its_own_losses(monkeypatch):
    monkeypatch.setattr(mean_loss_hook, 'all_reduce', pytest.fail)
    outputs = {'loss': torch.tensor(0.7)}
    MeanLossOverRanksHook().after_train_iter(None, 0, outputs=outputs)
    assert outputs['loss'].item() == pytest.approx(0.7)


def test_final_weights_are_validated_once_when_no_epoch_did():
    hook = FinalValidationHook()
    runs = []
    runner = SimpleNamespace(iter=8, val_loop=None)
    runner.val_loop = SimpleNamespace(
        run=lambda: (runs.append(runner.iter),
                     hook.after_val_epoch(runner, {'accuracy/top1': 80.0})))
    hook.after_val_epoch(runner, {'accuracy/top1': 79.0})  # the last epoch
    hook.after_train(runner)
    assert runs == [] and hook.metrics == {'accuracy/top1': 79.0}
    runner.iter = 9  # resumed past the last validation: validate again
    hook.after_train(runner)
    assert runs == [9] and hook.metrics == {'accuracy/top1': 80.0}
    without_val = SimpleNamespace(iter=10, val_loop=None)
    FinalValidationHook().after_train(without_val)  # nothing to run


@pytest.mark.parametrize('optim,warned', [
    (optim_cfg(), True),  # MMPretrain's schedules decay every weight
    (optim_cfg(binary_no_decay=True), False),
    (optim_cfg(weight_decay=0.0), False),
])
def test_decay_on_binary_latent_weights_is_warned_once(tmp_path, optim,
                                                       warned):
    runner = make_runner(tmp_path, [BinaryWeightDecayCheckHook()], optim,
                         model=TinyNet(), max_epochs=1)
    runner.train()
    log = log_text(runner)
    assert log.count('weight decay (0.0001) acts on 1 of 1 binary latent '
                     'weights') == int(warned)
