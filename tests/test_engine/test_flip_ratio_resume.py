"""FlipRatioHook across checkpoints, in process: a resumed run continues
its epoch's reference signs, a new run from the same checkpoint does not."""
import os.path as osp

import pytest
import torch
from tiny_runner import InterruptAtIter, Interrupted, TinyNet, make_runner

from mmbireal.engine import FlipRatioHook
from mmbireal.utils import load_checkpoint_file

# a large step, so signs flip within the three iterations before the stop
FAST = dict(optimizer=dict(type='SGD', lr=5.0))


class StartSigns(FlipRatioHook):
    """Records the reference signs each epoch is measured against."""

    def before_train_epoch(self, runner) -> None:
        super().before_train_epoch(runner)
        self.start = {k: v.clone() for k, v in self._reference.items()}


def interrupted_run(tmp_path) -> str:
    runner = make_runner(tmp_path / 'a', [FlipRatioHook(), InterruptAtIter(3)],
                         FAST, model=TinyNet('magnitude_aware'), max_epochs=1)
    with pytest.raises(Interrupted):
        runner.train()
    return osp.join(tmp_path, 'a', 'iter_3.pth')


@pytest.mark.parametrize('resume', [True, False])
def test_reference_signs_follow_the_run_not_the_file(tmp_path, resume):
    checkpoint = interrupted_run(tmp_path)
    saved = load_checkpoint_file(checkpoint)  # weights-only, allow-listed
    epoch_start = saved[FlipRatioHook.CKPT_KEY]['conv.weight']
    now = saved['state_dict']['conv.weight'] >= 0
    assert not torch.equal(epoch_start, now)  # signs flipped before the stop

    hook = StartSigns()
    work = tmp_path / ('a' if resume else 'b')
    runner = make_runner(work, [hook], FAST, model=TinyNet('magnitude_aware'),
                         max_epochs=1, load_from=checkpoint, resume=resume)
    runner.train()
    # resumed: the interrupted epoch's start; a new run: its own start
    expected = epoch_start if resume else now
    assert torch.equal(hook.start['conv.weight'], expected)
