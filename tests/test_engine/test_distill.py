"""DistillImageClassifier: the loss against its formula, the teacher kept
out of parameters, state dict and optimizer, a short real run resumed
mid-epoch, and one-line errors for a bad teacher."""
import copy
import os.path as osp

import pytest
import torch
import torch.nn.functional as F
from helpers import free_port
from mmengine.registry import DefaultScope
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from tiny_runner import make_runner, weights

import mmbireal  # noqa: F401 (registers the classifier)
from mmbireal.utils import CheckpointError, InputError, load_checkpoint_file

CLASSES = 3


def _net(width=8, **backbone):
    return dict(
        type='ImageClassifier',
        backbone=dict(type='BiRealNet', depth=18, in_channels=1,
                      stem_type='small', stem_channels=width,
                      base_channels=width, **backbone),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=CLASSES,
                  in_channels=8 * width))


TEACHER = _net(conv_cfg=None, act_cfg=dict(type='Clip'))


def _build(cfg):
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return MODELS.build(copy.deepcopy(cfg))


@pytest.fixture
def teacher_ckpt(tmp_path):
    torch.manual_seed(5)
    teacher = _build(TEACHER)
    path = str(tmp_path / 'teacher.pth')
    torch.save(dict(state_dict=teacher.state_dict()), path)
    return path, teacher.state_dict()


def _student_cfg(ckpt, **kwargs):
    cfg = _net(sign_bias_cfg=dict(type='LearnableBias'),
               block_act_cfg=dict(type='RPReLU'))
    cfg.update(type='DistillImageClassifier', teacher_cfg=TEACHER,
               teacher_ckpt=ckpt, **kwargs)
    return cfg


def _student(ckpt, **kwargs):
    torch.manual_seed(0)
    model = _build(_student_cfg(ckpt, **kwargs))
    model.init_weights()
    return model


def _samples(labels):
    return [DataSample().set_gt_label(int(i)) for i in labels]


def test_teacher_is_loaded_frozen_and_outside_the_model(teacher_ckpt):
    path, state = teacher_ckpt
    model = _student(path)
    teacher = model.teacher
    for key, value in state.items():
        assert torch.equal(teacher.state_dict()[key], value), key
    assert not any(p.requires_grad for p in teacher.parameters())
    ids = {id(p) for p in teacher.parameters()}
    assert not ids & {id(p) for p in model.parameters()}
    assert not [k for k in model.state_dict() if 'teacher' in k]
    # the student's state dict is a plain ImageClassifier's
    plain = _build(_net(sign_bias_cfg=dict(type='LearnableBias'),
                        block_act_cfg=dict(type='RPReLU')))
    assert list(model.state_dict()) == list(plain.state_dict())
    model.train()
    assert model.training and not teacher.training
    model.to(torch.float64)
    assert all(p.dtype == torch.float64 for p in teacher.parameters())


def test_loss_is_soft_cross_entropy_to_the_teacher(teacher_ckpt):
    model = _student(teacher_ckpt[0]).train()
    x = torch.randn(4, 1, 6, 6, generator=torch.Generator().manual_seed(1))
    losses = model.loss(x, _samples([0, 1, 2, 0]))
    assert list(losses) == ['loss_distill']  # alpha=0: no label loss
    with torch.no_grad():
        logits = model.head(model.extract_feat(x))
        target = model.teacher(x, mode='tensor').softmax(1)
    expected = -(target * F.log_softmax(logits, 1)).sum(1).mean()
    torch.testing.assert_close(losses['loss_distill'], expected)
    # its gradient reaches every student parameter, no teacher parameter
    model.zero_grad()
    losses['loss_distill'].backward()
    assert all(p.grad is not None and bool(p.grad.abs().sum() > 0)
               for p in model.parameters() if p.requires_grad)
    assert all(p.grad is None for p in model.teacher.parameters())


def test_alpha_mixes_in_the_label_loss(teacher_ckpt):
    model = _student(teacher_ckpt[0], alpha=0.25).train()
    x = torch.randn(4, 1, 6, 6, generator=torch.Generator().manual_seed(2))
    labels = torch.tensor([0, 1, 2, 1])
    losses = model.loss(x, _samples(labels))
    with torch.no_grad():
        logits = model.head(model.extract_feat(x))
        target = model.teacher(x, mode='tensor').softmax(1)
    distill = -(target * F.log_softmax(logits, 1)).sum(1).mean()
    torch.testing.assert_close(losses['loss'],
                               0.25 * F.cross_entropy(logits, labels))
    torch.testing.assert_close(losses['loss_distill'], 0.75 * distill)


def test_no_distillation_before_the_teacher_has_weights(teacher_ckpt):
    torch.manual_seed(0)
    model = _build(_student_cfg(teacher_ckpt[0]))
    with pytest.raises(RuntimeError, match='init_weights'):
        model.loss(torch.randn(2, 1, 6, 6), None)


def _one_line(error, match, cfg):
    with pytest.raises(error, match=match) as info:
        _build(cfg).init_weights()
    assert '\n' not in str(info.value)


def test_missing_or_unfitting_teacher_checkpoint_is_one_line(tmp_path,
                                                             teacher_ckpt):
    _one_line(InputError, 'teacher_ckpt .*nothere.pth does not exist',
              _student_cfg(str(tmp_path / 'nothere.pth')))
    wider = str(tmp_path / 'wider.pth')
    torch.save(dict(state_dict=_build(_net(16, conv_cfg=None)).state_dict()),
               wider)
    _one_line(CheckpointError, r'^teacher: checkpoint .*wider.pth does not '
              'fit.*shape mismatches', _student_cfg(wider))
    junk = tmp_path / 'junk.pth'
    junk.write_bytes(b'not a checkpoint')
    _one_line(CheckpointError, 'cannot read checkpoint .*junk.pth',
              _student_cfg(str(junk)))
    # a URL is read, not looked up on disk (nothing listens on the port)
    url = f'http://127.0.0.1:{free_port()}/teacher.pth'
    _one_line(CheckpointError, f'^teacher: cannot download checkpoint {url}',
              _student_cfg(url))


def test_teacher_of_other_classes_or_normalisation_is_refused(tmp_path):
    other = copy.deepcopy(TEACHER)
    other['head']['num_classes'] = 5
    with pytest.raises(InputError, match='5 classes, the student 3'):
        _build(dict(_student_cfg('t.pth'), teacher_cfg=other))
    normed = dict(TEACHER, data_preprocessor=dict(mean=[10.], std=[2.]))
    with pytest.raises(InputError, match=r'mean=\[10.0\], the student '
                       r'with None'):
        _build(dict(_student_cfg('t.pth'), teacher_cfg=normed))
    with pytest.raises(InputError, match=r'alpha .* \[0, 1\], got 2'):
        _build(_student_cfg('t.pth', alpha=2))


def test_teacher_from_a_config_file(tmp_path, teacher_ckpt):
    cfg = tmp_path / 'teacher_cfg.py'
    cfg.write_text(f'model = {TEACHER!r}\n')
    model = _build(dict(_student_cfg(teacher_ckpt[0]),
                        teacher_cfg=str(cfg)))
    assert type(model.teacher.backbone).__name__ == 'BiRealNet'
    with pytest.raises(FileNotFoundError, match=r'nothere\.py does not exist'):
        _build(dict(_student_cfg(teacher_ckpt[0]),
                    teacher_cfg=str(tmp_path / 'nothere.py')))


def _run(work_dir, ckpt, **kwargs):
    torch.manual_seed(0)
    model = _build(_student_cfg(ckpt))
    optim = dict(optimizer=dict(type='Adam', lr=1e-3, weight_decay=0),
                 constructor='BinaryOptimWrapperConstructor',
                 paramwise_cfg=dict(binary_no_decay=True))
    runner = make_runner(work_dir, model=model, optim_wrapper=optim,
                         max_epochs=1, **kwargs)
    runner.train()
    return runner


@pytest.mark.slow  # about 25 s: two in-process runners
def test_short_run_resumed_mid_epoch_equals_uninterrupted(tmp_path,
                                                          teacher_ckpt):
    """Four iterations in one go, and two then two more after --resume,
    end with the same student; checkpoints hold the student only."""
    path = teacher_ckpt[0]
    whole = _run(tmp_path / 'whole', path)
    n_student = len(list(whole.model.parameters()))
    groups = whole.optim_wrapper.optimizer.param_groups
    assert sum(len(g['params']) for g in groups) == n_student
    ckpt = osp.join(whole.work_dir, 'iter_2.pth')
    saved = load_checkpoint_file(ckpt)['state_dict']
    assert not [k for k in saved if 'teacher' in k]
    assert saved.keys() == whole.model.state_dict().keys()
    resumed = _run(tmp_path / 'resumed', path, resume=True, load_from=ckpt)
    assert resumed.iter == whole.iter == 4
    final, again = weights(whole.model), weights(resumed.model)
    changed = False
    for key in final:
        torch.testing.assert_close(again[key], final[key], rtol=0,
                                   atol=1e-6)
        changed |= 'act' in key and bool(final[key].ne(0).any()) and \
            'prelu' not in key
    assert changed  # the new biases did train

