"""BinaryOptimWrapperConstructor, WeightDecayZeroHook and BNRetrainHook,
in a small real Runner."""
import pytest
import torch
from mmengine.hooks import Hook
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope
from tiny_runner import (
    RecordGroups,
    TinyNet,
    log_text,
    make_runner,
    optim_cfg,
    weights,
)

from mmbireal.engine import BNRetrainHook, WeightDecayZeroHook
from mmbireal.models.binarizers import sign_nonzero
from mmbireal.utils import InputError

NON_BN = ('stem.weight', 'stem.bias', 'conv.weight', 'fc.weight', 'fc.bias')
BN = ('bn0.weight', 'bn0.bias', 'bn1.weight', 'bn1.bias')


def built_groups(model, cfg) -> list:
    """(tag, parameter names, lr, weight_decay) of each group."""
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        wrapper = build_optim_wrapper(model, cfg)
    names = {id(p): n for n, p in model.named_parameters()}
    return [(g.get('mmbireal_group'), [names[id(p)] for p in g['params']],
             g['lr'], g['weight_decay'])
            for g in wrapper.optimizer.param_groups]


def test_constructor_groups():
    model = TinyNet()
    every = [n for n, _ in model.named_parameters()]
    others = [n for n in every if n != 'conv.weight']
    # without switches: mmengine's single group
    assert built_groups(model, optim_cfg()) == [(None, every, 0.1, 1e-4)]
    # the binary latent weight split off with decay 0, the rest untouched
    assert built_groups(model, optim_cfg(binary_no_decay=True)) == [
        (None, others, 0.1, 1e-4),
        ('binary_weights_no_decay', ['conv.weight'], 0.1, 0.0)]
    # BN retrain: everything outside BatchNorm at lr 0, decay 0 (the binary
    # weight with it: no group of its own is left to make)
    assert built_groups(
        model, optim_cfg(bn_only=True, binary_no_decay=True)) == [
            (None, list(BN), 0.1, 1e-4),
            ('bn_retrain_frozen', list(NON_BN), 0.0, 0.0)]
    # with one of mmengine's options: its group per parameter, overridden
    cfg = optim_cfg(binary_no_decay=True)
    cfg['paramwise_cfg']['norm_decay_mult'] = 0.0
    assert built_groups(model, cfg) == [
        ('binary_weights_no_decay' if n == 'conv.weight' else None, [n],
         0.1, 0.0 if n.startswith(('bn', 'conv')) else 1e-4)
        for n in every]


def test_constructor_refuses_a_non_bool_switch():
    with pytest.raises(InputError) as error:
        built_groups(TinyNet(), optim_cfg(bn_only='yes'))
    assert str(error.value) == ("paramwise_cfg.bn_only must be True or "
                                "False, got 'yes'")


def test_decay_stays_zero_on_binary_weights_under_schedulers(tmp_path):
    record = RecordGroups()
    runner = make_runner(
        tmp_path, [WeightDecayZeroHook(), record],
        optim_cfg(binary_no_decay=True),
        param_scheduler=[
            dict(type='LinearLR', start_factor=0.5, by_epoch=False,
                 begin=0, end=3),
            dict(type='MultiStepLR', by_epoch=True, milestones=[1],
                 gamma=0.1),
            dict(type='MultiStepParamScheduler', param_name='weight_decay',
                 by_epoch=True, milestones=[1], gamma=0.5)
        ])
    runner.train()
    assert len(record.seen) == 8
    for it, groups in enumerate(record.seen):
        (tag0, lr0, wd0), (tag1, lr1, wd1) = groups
        assert (tag0, tag1) == (None, 'binary_weights_no_decay')
        assert wd1 == 0.0
        assert wd0 == pytest.approx(1e-4 if it < 4 else 5e-5)
        assert lr1 == lr0  # the binary weights follow the lr schedule
    lrs = [groups[0][1] for groups in record.seen]
    assert lrs[0] == pytest.approx(0.05) and lrs[-1] == pytest.approx(0.01)
    assert ('WeightDecayZeroHook: 1 binary latent weights (144 values) are '
            'in a weight_decay=0 group (set by '
            "BinaryOptimWrapperConstructor); other groups' decay: [0.0001]"
            ) in log_text(runner)


@pytest.mark.parametrize('hook, optim, message', [
    (WeightDecayZeroHook, optim_cfg(), 'WeightDecayZeroHook: the binary '
     'latent weights have no optimizer group of their own with '
     "weight_decay=0.0; add to the config: optim_wrapper = dict(constructor="
     "'BinaryOptimWrapperConstructor', paramwise_cfg=dict("
     'binary_no_decay=True))'),
    (BNRetrainHook, optim_cfg(binary_no_decay=True), 'BNRetrainHook: the '
     'non-BatchNorm parameters have no optimizer group of their own with '
     'lr=0.0, weight_decay=0.0; add to the config: optim_wrapper = dict('
     "constructor='BinaryOptimWrapperConstructor', "
     'paramwise_cfg=dict(bn_only=True))'),
])
def test_hook_without_its_groups_names_the_config_line(tmp_path, hook,
                                                       optim, message):
    runner = make_runner(tmp_path, [hook()], optim,
                         model=TinyNet('sign'))
    before = weights(runner.model)
    with pytest.raises(InputError) as error:
        runner.train()
    assert str(error.value) == message
    after = weights(runner.model)
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_bn_retrain_needs_the_configs_sign_binarizer(tmp_path):
    runner = make_runner(tmp_path, [BNRetrainHook()],
                         optim_cfg(bn_only=True))  # magnitude_aware
    with pytest.raises(InputError) as error:
        runner.train()
    assert str(error.value) == (
        "BNRetrainHook: binary convs use weight_binarizer 'magnitude_aware'"
        '; BN retrain needs exactly +-1 weights: set '
        "model.backbone.conv_cfg.weight_binarizer='sign' in the config")


def test_bn_retrain_refuses_a_model_without_binary_weights(tmp_path):
    runner = make_runner(tmp_path, [BNRetrainHook()],
                         optim_cfg(bn_only=True), model=TinyNet(None))
    with pytest.raises(InputError, match=r'^BNRetrainHook: the model has no '
                       r'convs with binarized weights; '):
        runner.train()


def test_bn_retrain_trains_bn_only(tmp_path):
    model = TinyNet('sign')
    start = weights(model)
    start['conv.weight'] = sign_nonzero(start['conv.weight'])
    # decay and a warm-up + step schedule, as a config might inherit them
    runner = make_runner(
        tmp_path, [BNRetrainHook()],
        optim_cfg(bn_only=True, binary_no_decay=True), model=model,
        param_scheduler=[
            dict(type='LinearLR', start_factor=0.5, by_epoch=False,
                 begin=0, end=3),
            dict(type='MultiStepLR', by_epoch=True, milestones=[1],
                 gamma=0.1)
        ])
    runner.train()
    end = weights(runner.model)
    for key in NON_BN:
        assert torch.equal(end[key], start[key]), key
    assert set(end['conv.weight'].unique().tolist()) == {-1.0, 1.0}
    for key in BN:
        assert not torch.equal(end[key], start[key]), key
    log = log_text(runner)
    assert 'BNRetrainHook: lr=0 on 5 non-BatchNorm parameters' in log
    assert 'BNRetrainHook: 1 binary convs now use exactly +-1 weights' in log
    assert ('all 144 binary weights are -1 or +1 and identical on all 1 '
            'rank(s)') in log


class _MoveABinaryWeight(Hook):
    """Nudges one binary weight off +-1 before BNRetrainHook's check."""

    priority = 'HIGHEST'  # after_train runs before BNRetrainHook's

    def after_train(self, runner) -> None:
        with torch.no_grad():
            runner.model.conv.weight.view(-1)[0] *= 0.5


def test_bn_retrain_refuses_weights_moved_off_plus_minus_one(tmp_path):
    runner = make_runner(tmp_path, [BNRetrainHook(), _MoveABinaryWeight()],
                         optim_cfg(bn_only=True), model=TinyNet('sign'),
                         max_epochs=1)
    with pytest.raises(RuntimeError, match='moved away from \\+-1'):
        runner.train()


def test_bn_retrain_refuses_ranks_with_different_weights(tmp_path,
                                                         monkeypatch):
    from mmbireal.engine.hooks import bn_retrain_hook
    runner = make_runner(tmp_path, [BNRetrainHook()],
                         optim_cfg(bn_only=True), model=TinyNet('sign'),
                         max_epochs=1)
    # as if a second rank had hashed other weights
    monkeypatch.setattr(bn_retrain_hook.dist, 'all_gather_object',
                        lambda digest: [digest, 'f' * 16])
    with pytest.raises(RuntimeError, match='ranks ended with different '
                       'binary weights'):
        runner.train()


def test_bn_retrain_refuses_ema_which_would_save_other_weights(tmp_path):
    runner = make_runner(tmp_path, [BNRetrainHook(), dict(type='EMAHook')],
                         optim_cfg(bn_only=True), model=TinyNet('sign'))
    with pytest.raises(InputError, match=r'^BNRetrainHook: EMAHook is set'):
        runner.train()


def test_a_scheduler_moving_the_frozen_lr_stops_the_run(tmp_path):
    model = TinyNet('sign')
    runner = make_runner(
        tmp_path, [BNRetrainHook()], optim_cfg(bn_only=True), model=model,
        param_scheduler=dict(type='CosineAnnealingLR', by_epoch=False,
                             T_max=8, eta_min=0.01))
    with pytest.raises(InputError, match=(
            r'^BNRetrainHook: the non-BatchNorm parameters got lr=0\.00\d+ '
            r'\(iteration 2\), from a parameter scheduler or a resumed '
            r'optimizer state; use schedulers that scale the value '
            r'\(ConstantLR, MultiStepLR, LinearLR, \.\.\.\) with eta_min=0, '
            r'and resume from a checkpoint of this config$')):
        runner.train()
    # stopped before a step with that lr
    end = weights(runner.model)
    assert torch.equal(end['fc.weight'], weights(TinyNet())['fc.weight'])


def test_binary_lr_mult_scales_the_binary_group_only():
    model = TinyNet()
    others = [n for n, _ in model.named_parameters() if n != 'conv.weight']
    assert built_groups(
        model, optim_cfg(binary_no_decay=True, binary_lr_mult=40.0)) == [
            (None, others, 0.1, 1e-4),
            ('binary_weights_no_decay', ['conv.weight'],
             pytest.approx(4.0), 0.0)]


def test_binary_lr_mult_scales_the_optimizers_default_lr():
    # Adam's lr defaults to 1e-3 when the config gives none
    cfg = dict(constructor='BinaryOptimWrapperConstructor',
               optimizer=dict(type='Adam'),
               paramwise_cfg=dict(binary_no_decay=True, binary_lr_mult=40.0))
    groups = built_groups(TinyNet(), cfg)
    assert [(tag, lr) for tag, _, lr, _ in groups] == [
        (None, 1e-3), ('binary_weights_no_decay', pytest.approx(0.04))]


@pytest.mark.parametrize('switches,message', [
    (dict(binary_no_decay=True, binary_lr_mult=0), 'positive number'),
    (dict(binary_no_decay=True, binary_lr_mult=None), 'positive number'),
    (dict(binary_lr_mult=2.0), 'needs binary_no_decay=True'),
])
def test_binary_lr_mult_refuses_bad_settings(switches, message):
    with pytest.raises(InputError, match=message):
        built_groups(TinyNet(), optim_cfg(**switches))


def test_a_resumed_optimizer_state_with_another_lr_stops_the_run(tmp_path):
    """Resuming replaces the group dicts after before_run's check: the
    groups checked before each iteration are the resumed ones."""
    runner = make_runner(tmp_path, [BNRetrainHook()],
                         optim_cfg(bn_only=True), model=TinyNet('sign'),
                         max_epochs=1)
    runner.train()
    path = tmp_path / f'iter_{runner.iter}.pth'
    checkpoint = torch.load(path, weights_only=False)
    frozen = [g for g in checkpoint['optimizer']['param_groups']
              if g.get('mmbireal_group') == 'bn_retrain_frozen']
    assert frozen and all(g['lr'] == 0.0 for g in frozen)
    for group in frozen:  # as a checkpoint of another config would hold
        group['lr'] = 0.01
    torch.save(checkpoint, path)
    resumed = make_runner(tmp_path, [BNRetrainHook()],
                          optim_cfg(bn_only=True), model=TinyNet('sign'),
                          max_epochs=2, resume=True, load_from=str(path))
    with pytest.raises(InputError, match=(
            r'^BNRetrainHook: the non-BatchNorm parameters got lr=0\.01 '
            rf'\(iteration {runner.iter + 1}\), from a parameter scheduler '
            r'or a resumed optimizer state')):
        resumed.train()
