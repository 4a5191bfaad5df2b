"""StopOnInvalidLossHook in a small real Runner: it stops at the first
NaN/inf loss, names where, and leaves no checkpoint of the broken step."""
import math
import os.path as osp

import pytest
import torch
from tiny_runner import TinyNet, make_runner

from mmbireal.engine.hooks.invalid_loss_hook import StopOnInvalidLossHook
from mmbireal.utils.errors import InvalidLossError


class BreaksAt(TinyNet):
    """TinyNet whose loss is ``value`` at training step ``at`` (1-based)."""

    def __init__(self, at: int, value: float) -> None:
        super().__init__()
        self.at, self.value, self.steps = at, value, 0

    def forward(self, inputs, labels=None, mode='tensor'):
        out = super().forward(inputs, labels, mode)
        if mode == 'loss':
            self.steps += 1
            if self.steps == self.at:
                out['loss'] = out['loss'] * torch.tensor(self.value)
        return out


@pytest.mark.parametrize('value', [math.nan, math.inf])
def test_stops_at_the_broken_step_before_its_checkpoint(tmp_path, value):
    runner = make_runner(tmp_path, [StopOnInvalidLossHook()],
                         model=BreaksAt(6, value))  # 4 steps an epoch
    with pytest.raises(InvalidLossError) as error:
        runner.train()
    message = str(error.value)
    assert message.startswith(f'loss is {value * 1.0} at iteration 6 '
                              '(epoch 2, batch 2): training stopped')
    assert '--resume' in message and '\n' not in message
    assert osp.isfile(osp.join(str(tmp_path), 'iter_5.pth'))
    assert not osp.exists(osp.join(str(tmp_path), 'iter_6.pth'))


def test_finite_losses_train_to_the_end(tmp_path):
    runner = make_runner(tmp_path, [StopOnInvalidLossHook()], max_epochs=1)
    runner.train()
    assert osp.isfile(osp.join(str(tmp_path), 'iter_4.pth'))
