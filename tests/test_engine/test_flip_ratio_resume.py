"""FlipRatioHook across checkpoints, in process: a resumed run continues
its epoch's reference signs, a new run from the same checkpoint does not."""
import json
import os.path as osp
from types import SimpleNamespace

import pytest
import torch
from gpu_stand_in import on_gpu
from mmengine.hooks import Hook
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


class RecordEpochSigns(Hook):
    """The binary conv's signs at the start and end of every epoch."""

    priority = 'HIGHEST'

    def __init__(self) -> None:
        self.starts, self.ends = [], []

    def before_train_epoch(self, runner) -> None:
        self.starts.append(runner.model.conv.weight.detach() >= 0)

    def after_train_epoch(self, runner) -> None:
        self.ends.append(runner.model.conv.weight.detach() >= 0)


def test_logged_ratio_is_the_share_of_signs_changed_in_the_epoch(tmp_path):
    record = RecordEpochSigns()
    runner = make_runner(tmp_path, [FlipRatioHook(), record], FAST,
                         model=TinyNet('magnitude_aware'), max_epochs=2)
    runner.train()
    with open(osp.join(runner.log_dir, 'vis_data', 'scalars.json')) as f:
        logged = [json.loads(line) for line in f]
    logged = {r['step']: r for r in logged if 'flip_ratio/all' in r}
    assert sorted(logged) == [1, 2]
    for epoch, (start, end) in enumerate(zip(record.starts, record.ends), 1):
        expected = (start != end).float().mean().item()
        # TinyNet's one binary conv is outside the layer* stages: its name
        assert logged[epoch]['flip_ratio/conv'] == pytest.approx(expected)
        assert logged[epoch]['flip_ratio/all'] == pytest.approx(expected)
    assert logged[1]['flip_ratio/all'] > 0  # the large lr flips signs


def test_resumed_reference_signs_mapped_to_a_gpu_come_back_to_the_cpu():
    """mmengine resumes with map_location=<device>; the signs are compared
    with ``(w >= 0).cpu()``, so they must be CPU tensors again."""
    signs = {'conv.weight': torch.tensor([True, False])}
    hook = FlipRatioHook()
    hook.after_load_checkpoint(
        SimpleNamespace(_resume=True),
        {FlipRatioHook.CKPT_KEY: on_gpu(signs)})
    restored = hook._reference['conv.weight']
    assert type(restored) is torch.Tensor
    assert torch.equal(restored, signs['conv.weight'])
