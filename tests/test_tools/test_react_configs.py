"""The ReActNet-style configs: what each step builds, the chain of
checkpoints, and the authors' weight-decay rule."""
import os.path as osp

import pytest
from helpers import REPO
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope

from mmbireal.apis import build_model
from mmbireal.models import BinaryConv2d, LearnableBias, RPReLU

CONFIGS = osp.join(REPO, 'configs', 'birealnet')
# name -> (distilled, with RSign/RPReLU)
FMNIST = {
    'bireal18-react': (True, True),
    'bireal18-rsign-rprelu': (False, True),
    'bireal18-distill': (True, False),
}


def _cfg(name: str) -> Config:
    return Config.fromfile(osp.join(CONFIGS, name))


def _check_model(model, distilled, parts, binary_weights):
    assert (type(model).__name__ == 'DistillImageClassifier') == distilled
    convs = [m for m in model.backbone.modules()
             if isinstance(m, BinaryConv2d)]
    assert len(convs) == 16 and all(c.binarizes_input for c in convs)
    assert {c.weight_binarizer for c in convs} == {
        'scaled_sign' if binary_weights else None}
    assert any(isinstance(m, LearnableBias)
               for m in model.backbone.modules()) == parts
    assert sum(isinstance(m, RPReLU)
               for m in model.backbone.modules()) == (16 if parts else 0)


@pytest.mark.parametrize('chain', sorted(FMNIST))
def test_fmnist_chain(chain):
    distilled, parts = FMNIST[chain]
    step1 = _cfg(f'{chain}_step1_1xb64_fmnist.py')
    step2 = _cfg(f'{chain}_step2_1xb64_fmnist.py')
    for step, cfg in ((1, step1), (2, step2)):
        # the reproduction's budget
        assert cfg.train_dataloader.dataset.indices == 12000
        assert cfg.train_cfg.max_epochs == 4
        assert cfg.optim_wrapper.optimizer.type == 'Adam'
        assert cfg.param_scheduler.type == 'LinearLR'
        model = build_model(cfg)
        _check_model(model, distilled, parts, binary_weights=step == 2)
        if distilled:  # our real-valued network of the same data
            assert model.teacher_ckpt == ('work_dirs/bireal18_clip-pre_'
                                          '1xb64_fmnist/epoch_4.pth')
            assert not any(isinstance(m, BinaryConv2d)
                           for m in model.teacher.modules())
    assert step1.load_from is None
    assert step2.load_from == (f'work_dirs/{chain}_step1_1xb64_fmnist/'
                               'epoch_4.pth')
    assert step1.optim_wrapper.optimizer.weight_decay == 1e-5
    assert step2.optim_wrapper.optimizer.weight_decay == 0


def _decay_by_name(cfg, model):
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    names = {id(p): n for n, p in model.named_parameters()}
    return {names[id(p)]: g['weight_decay']
            for g in wrapper.optimizer.param_groups for p in g['params']}


@pytest.mark.parametrize('config', ['bireal18-react_step1_1xb64_fmnist.py',
                                    'bireal18-react_step2_1xb64_fmnist.py'])
def test_weight_decay_follows_the_authors(config):
    """Step 1: 1e-5 where the authors decay (4-D parameters, which includes
    their (1, C, 1, 1) learnable shifts, or 'conv' in the name), 0 on BN,
    PReLU slopes and the classifier. Step 2: 0 everywhere."""
    cfg = _cfg(config)
    model = build_model(cfg)
    decay = _decay_by_name(cfg, model)
    assert set(decay) == {n for n, _ in model.named_parameters()}
    step2 = 'step2' in config
    for name, p in model.named_parameters():
        authors = p.dim() == 4 or 'conv' in name or (
            'bias' in name and ('.act.' in name or 'shift' in name))
        assert decay[name] == (0 if step2 or not authors else 1e-5), name
    assert decay['backbone.layer1.0.act.bias'] == (0 if step2 else 1e-5)
    assert decay['backbone.layer1.0.block_act.prelu.weight'] == 0


def test_imagenet_steps_follow_the_authors_recipe():
    step1 = _cfg('bireal18-react_step1_8xb64_in1k.py')
    step2 = _cfg('bireal18-react_step2_8xb64_in1k.py')
    for cfg in (step1, step2):
        assert cfg.model.type == 'DistillImageClassifier'
        assert cfg.model.teacher_cfg == \
            'mmpretrain::resnet/resnet34_8xb32_in1k.py'
        assert cfg.model.alpha == 0
        assert cfg.optim_wrapper.optimizer.type == 'Adam'
        assert cfg.optim_wrapper.optimizer.lr == 2.5e-3
        assert cfg.auto_scale_lr.base_batch_size == 512
        assert cfg.train_dataloader.batch_size * 8 == 512
        assert cfg.train_cfg.max_epochs == cfg.param_scheduler.end == 128
        assert cfg.param_scheduler.end_factor == 0
        assert cfg.model.backbone.sign_bias_cfg == dict(type='LearnableBias')
        assert cfg.model.backbone.block_act_cfg == dict(type='RPReLU')
    assert step1.model.backbone.conv_cfg.weight_binarizer is None
    assert step2.model.backbone.conv_cfg.weight_binarizer == 'scaled_sign'
    assert step1.optim_wrapper.optimizer.weight_decay == 1e-5
    assert step2.optim_wrapper.optimizer.weight_decay == 0
    assert step2.load_from == ('work_dirs/bireal18-react_step1_8xb64_in1k/'
                               'epoch_128.pth')
    # the teacher config's normalisation is the student's (checked when
    # the model is built)
    model = build_model(step2)
    assert type(model.teacher.backbone).__name__ == 'ResNet'
    assert model.teacher.backbone.depth == 34
