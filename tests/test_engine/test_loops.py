"""ResumableEpochBasedTrainLoop and the parameter groups across a resume:
a run interrupted mid-epoch and resumed ends as the uninterrupted one."""
import os.path as osp
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.evaluator import BaseMetric, Evaluator
from mmengine.hooks import Hook
from tiny_runner import (
    BATCH,
    InterruptAtIter,
    Interrupted,
    NoisyImages,
    RecordGroups,
    TinyNet,
    make_runner,
    optim_cfg,
    weights,
)

from mmbireal.engine import BNRetrainHook, WeightDecayZeroHook
from mmbireal.utils import load_checkpoint_file

# 4 iterations per epoch, 2 epochs; interrupted after iteration 6, the
# second batch of epoch 2
SETUPS = {
    'binary': (WeightDecayZeroHook, 'magnitude_aware',
               dict(binary_no_decay=True)),
    'bn-retrain': (BNRetrainHook, 'sign',
                   dict(bn_only=True, binary_no_decay=True)),
}


def run(tmp_path, setup: str, work: str, loop: str, stop_at: int = 0,
        **kwargs):
    """Train ``setup`` in ``work``; return the runner and its recorder."""
    hook, binarizer, switches = SETUPS[setup]
    record = RecordGroups()
    hooks = [hook(), record]
    if stop_at:
        hooks.append(InterruptAtIter(stop_at))
    runner = make_runner(tmp_path / work, hooks, optim_cfg(**switches),
                         model=TinyNet(binarizer), loop=loop, **kwargs)
    if stop_at:
        with pytest.raises(Interrupted):
            runner.train()
    else:
        runner.train()
    return runner, record


def interrupted_then_resumed(tmp_path, setup: str, loop: str):
    run(tmp_path, setup, 'parts', loop, stop_at=6)
    saved = osp.join(tmp_path, 'parts', 'iter_6.pth')
    return run(tmp_path, setup, 'parts', loop, load_from=saved, resume=True)


def optimizer_state(runner) -> dict:
    return runner.optim_wrapper.optimizer.state_dict()


@pytest.mark.parametrize('setup', sorted(SETUPS))
def test_resumed_mid_epoch_equals_uninterrupted(tmp_path, setup):
    loop = 'ResumableEpochBasedTrainLoop'
    whole, whole_record = run(tmp_path, setup, 'whole', loop)
    parts, parts_record = interrupted_then_resumed(tmp_path, setup, loop)
    assert parts.iter == whole.iter == 8

    # the resumed run built the groups the checkpoint holds, before loading
    saved = load_checkpoint_file(osp.join(tmp_path, 'parts', 'iter_6.pth'))[
        'optimizer']['param_groups']
    assert parts_record.layout == whole_record.layout == [
        (g.get('mmbireal_group'), len(g['params'])) for g in saved]
    # and it saw the uninterrupted run's group settings in its iterations
    assert parts_record.seen == whole_record.seen[6:]

    a, b = weights(whole.model), weights(parts.model)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    sa, sb = optimizer_state(whole), optimizer_state(parts)
    assert sa['param_groups'] == sb['param_groups']
    for index, state in sa['state'].items():
        for name, value in state.items():
            assert torch.equal(value, sb['state'][index][name]), name


class RandomStepNet(TinyNet):
    """Draws random numbers in its training step, as dropout or Mixup do:
    torch's, numpy's and Python's generators."""

    def forward(self, inputs, labels=None, mode='tensor'):
        logits = F.dropout(super().forward(inputs), 0.5, self.training)
        if mode == 'loss':
            scale = 1 + np.random.rand() + random.random()
            return dict(loss=scale * F.cross_entropy(logits, labels))
        return logits


def test_random_draws_of_the_training_step_resume_exactly(tmp_path):
    def train(work, stop_at=0, **kwargs):
        hooks = [InterruptAtIter(stop_at)] if stop_at else []
        runner = make_runner(tmp_path / work, hooks, model=RandomStepNet(),
                             **kwargs)
        if stop_at:
            with pytest.raises(Interrupted):
                runner.train()
        else:
            runner.train()
        return weights(runner.model)

    whole = train('whole')
    train('parts', stop_at=6)
    parts = train('parts', load_from=str(tmp_path / 'parts' / 'iter_6.pth'),
                  resume=True)
    for key in whole:
        assert torch.equal(whole[key], parts[key]), key


def test_mmengines_loop_resumed_mid_epoch_differs(tmp_path):
    """The check above can fail: mmengine's own loop restarts the epoch."""
    loop = 'EpochBasedTrainLoop'
    whole, _ = run(tmp_path, 'binary', 'whole', loop)
    parts, _ = interrupted_then_resumed(tmp_path, 'binary', loop)
    assert (whole.iter, parts.iter) == (8, 10)
    a, b = weights(whole.model), weights(parts.model)
    assert not torch.equal(a['conv.weight'], b['conv.weight'])


def test_every_process_draws_one_order_with_diff_rank_seed(tmp_path,
                                                            monkeypatch):
    """diff_rank_seed gives each process its own runner.seed; the sampler's
    order must still be the same on all, or they would not split it."""
    import mmengine.runner.utils

    from mmbireal.engine import loops

    def sampler_order(work: str, rank: int) -> list:
        for module in (loops, mmengine.runner.utils):
            monkeypatch.setattr(module, 'get_rank', lambda: rank)
        runner = make_runner(tmp_path / work, max_epochs=1,
                             randomness=dict(seed=5, diff_rank_seed=True))
        runner.train()
        assert runner.seed == 5 + rank
        return list(runner.train_dataloader.sampler)

    assert sampler_order('rank0', 0) == sampler_order('rank1', 1)


class CountSamples(BaseMetric):
    """How many images were validated: enough to see that a validation
    ran."""

    def process(self, data_batch, data_samples) -> None:
        self.results.append(len(data_samples))

    def compute_metrics(self, results: list) -> dict:
        return dict(images=sum(results))


class ValidatedEpochs(Hook):
    """The epochs a validation finished after; optionally stops the run
    during the validation of ``stop_in`` (the checkpoint of that epoch's end
    is already saved then)."""

    def __init__(self, stop_in: int = 0) -> None:
        self.stop_in, self.epochs = stop_in, []

    def before_val_epoch(self, runner) -> None:
        if runner.epoch == self.stop_in:
            raise Interrupted

    def after_val_epoch(self, runner, metrics=None) -> None:
        self.epochs.append(runner.epoch)


def with_validation(runner_kwargs: dict) -> dict:
    """Validation after every epoch, and the checkpoints of the configs: at
    every epoch's end (before its validation), and every few iterations."""
    return dict(
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=1),
            iter_checkpoint=dict(type='IterCheckpointHook', interval=3,
                                 save_last=False)),
        val_dataloader=dict(
            dataset=NoisyImages(), sampler=dict(type='DefaultSampler',
                                                shuffle=False),
            batch_size=BATCH, num_workers=0,
            collate_fn=dict(type='default_collate')),
        val_cfg=dict(), val_evaluator=Evaluator(CountSamples()),
        **runner_kwargs)


@pytest.mark.parametrize('loop', ['ResumableEpochBasedTrainLoop',
                                  'EpochBasedTrainLoop'])
def test_stopped_during_the_last_validation_resumes_into_it(tmp_path, loop):
    """A run stopped while validating its last epoch has its final
    checkpoint but no final score; resumed, it must validate (mmengine's
    loop sees max_epochs reached and ends without a score)."""
    work = tmp_path / 'run'
    stopping = ValidatedEpochs(stop_in=2)
    runner = make_runner(work, [stopping], loop=loop,
                         **with_validation({}))
    with pytest.raises(Interrupted):
        runner.train()
    assert stopping.epochs == [1]

    resumed = ValidatedEpochs()
    runner = make_runner(work, [resumed], loop=loop, resume=True,
                         **with_validation({}))
    runner.train()
    assert runner.iter == 8
    if loop == 'ResumableEpochBasedTrainLoop':
        assert resumed.epochs == [2]
    else:
        assert resumed.epochs == []  # the failure the loop above fixes


def test_an_epoch_checkpoint_saved_after_its_validation_is_not_validated_again(
        tmp_path):
    """CheckpointHook's save_best rewrites the epoch's checkpoint after the
    validation: resumed from it, the epoch must not be validated twice (a
    repeated score would count once more for ReduceOnPlateau or early
    stopping)."""
    work = tmp_path / 'run'
    settings = with_validation({})
    settings['default_hooks']['checkpoint'].update(save_best='images',
                                                   rule='greater')
    first = ValidatedEpochs()
    runner = make_runner(work, [first, InterruptAtIter(5)], **settings)
    with pytest.raises(Interrupted):
        runner.train()  # stopped in epoch 2, before an iteration checkpoint
    assert first.epochs == [1]
    with open(work / 'last_checkpoint') as f:
        assert f.read().strip().endswith('epoch_1.pth')

    resumed = ValidatedEpochs()
    runner = make_runner(work, [resumed], resume=True,
                         **with_validation({}))
    runner.train()
    assert runner.iter == 8
    assert resumed.epochs == [2]


def test_only_the_rank_that_saved_the_random_state_restores_it(monkeypatch):
    """mmengine saves rank 0's checkpoint only. With diff_rank_seed another
    process adopting rank 0's random state would draw the same
    Mixup/dropout numbers as rank 0 for the rest of the resumed epoch; with
    one seed for all, rank 0's state is every rank's."""
    from types import SimpleNamespace

    from mmengine.logging import MessageHub

    from mmbireal.engine import loops

    hub = MessageHub.get_instance('test_random_state_rank')
    runner = SimpleNamespace(message_hub=hub)
    loop = SimpleNamespace(runner=runner, _iter=6)
    monkeypatch.setattr(loops, 'get_rank', lambda: 0)
    loops.RecordRandomState().after_train_iter(
        SimpleNamespace(message_hub=hub, iter=5), 5)
    saved = loops.ResumableEpochBasedTrainLoop._saved_random_state
    assert saved(loop) is not None
    monkeypatch.setattr(loops, 'get_rank', lambda: 1)
    assert saved(loop) is not None  # one seed: rank 0's state is rank 1's
    runner._randomness_cfg = dict(seed=0, diff_rank_seed=True)
    assert saved(loop) is None


class EpochStreams(Hook):
    """Per epoch: the sampler's order, the main process's random state as
    its first batch was drawn and the seed its workers start from."""

    priority = 'LOWEST'

    def __init__(self) -> None:
        self.orders, self.states, self.worker_seeds = [], [], []

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        if batch_idx == 0:
            loader = runner.train_dataloader
            self.orders.append(list(loader.sampler))
            self.states.append(torch.get_rng_state())
            self.worker_seeds.append(loader.worker_init_fn.keywords['seed'])


@pytest.mark.parametrize('independent', [False, True])
def test_independent_seeds_share_no_stream(tmp_path, independent):
    """mmengine's use of seeds: seed 1's epoch 1 is seed 0's epoch 2 (order
    and main-process draws) and workers start alike every epoch;
    independent_seeds leaves nothing shared."""
    def streams(seed: int) -> EpochStreams:
        record = EpochStreams()
        make_runner(tmp_path / f'seed{seed}', [record], max_epochs=3,
                    randomness=dict(seed=seed),
                    loop_options=dict(independent_seeds=independent)).train()
        return record

    seed0, seed1 = streams(0), streams(1)
    shifted_order = seed1.orders[0] == seed0.orders[1]
    shifted_state = torch.equal(seed1.states[0], seed0.states[1])
    assert shifted_order == shifted_state == (not independent)
    assert (len(set(seed0.worker_seeds)) == 1) == (not independent)
    if independent:
        assert not set(seed0.worker_seeds) & set(seed1.worker_seeds)


def test_independent_seeds_resume_exactly(tmp_path):
    options = dict(loop_options=dict(independent_seeds=True))
    loop = 'ResumableEpochBasedTrainLoop'
    whole, _ = run(tmp_path, 'binary', 'whole', loop, **options)
    run(tmp_path, 'binary', 'parts', loop, stop_at=6, **options)
    parts, _ = run(tmp_path, 'binary', 'parts', loop,
                   load_from=str(tmp_path / 'parts' / 'iter_6.pth'),
                   resume=True, **options)
    a, b = weights(whole.model), weights(parts.model)
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_independent_seeds_takes_a_bool_only(tmp_path):
    """A string from --cfg-options such as 'false' would be truthy."""
    from mmbireal.utils import InputError
    with pytest.raises(InputError, match="independent_seeds must be True or "
                       "False, got 'false'"):
        make_runner(tmp_path, loop_options=dict(
            independent_seeds='false')).train()


def test_a_random_state_mapped_to_a_gpu_restores(monkeypatch):
    """mmengine resumes with map_location=<device>: on a GPU run the saved
    random state arrives as CUDA tensors, which the generators refuse."""
    from gpu_stand_in import on_gpu

    from mmbireal.engine import loops

    state = loops.random_state()
    expected = (random.random(), np.random.rand(), torch.rand(3))
    given = []
    set_rng_state = torch.set_rng_state
    monkeypatch.setattr(torch, 'set_rng_state',
                        lambda s: (given.append(type(s)), set_rng_state(s)))
    loops.set_random_state(on_gpu(state))
    assert given == [torch.Tensor]
    assert (random.random(), np.random.rand()) == expected[:2]
    assert torch.equal(torch.rand(3), expected[2])
