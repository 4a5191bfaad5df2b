"""What an MMPretrain user types by habit: pkg:: config paths, swapping the
backbone with --cfg-options, typos, dict(...) values, and a schedule that
decays the binary weights."""
import argparse
import inspect
import os.path as osp

import pytest
from helpers import TINY_FMNIST, run_tool
from mmengine.hooks import CheckpointHook
from mmengine.registry import init_default_scope
from mmpretrain.registry import MODELS

from mmbireal.models import BiRealNet
from mmbireal.utils import InputError
from mmbireal.utils.config import (
    add_cfg_options,
    unexpected_argument_message,
)

RESNET18 = 'mmpretrain::resnet/resnet18_8xb32_in1k.py'
QUICK = 'configs/birealnet/bireal18_1xb64-quick_fmnist.py'
BIREAL_ARGS = [
    p for p in inspect.signature(BiRealNet).parameters
    if p not in ('args', 'kwargs')
]


def imagenet_folder(root: str) -> list:
    options = []
    for split in ('train', 'val', 'test'):
        options += [
            f'{split}_dataloader.dataset.data_root={root}',
            f'{split}_dataloader.batch_size=4',
            f'{split}_dataloader.num_workers=0'
        ]
    return [*options, 'train_cfg.max_epochs=1',
            'default_hooks.logger.interval=1']


def one_line_error(args: list) -> str:
    proc = run_tool(args, check=False)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert 'Traceback' not in proc.stderr, proc.stderr[-3000:]
    return proc.stderr.strip().splitlines()[-1]


@pytest.mark.slow
def test_pkg_config_paths_in_train_and_test(tiny_imagenet, tmp_path):
    work = str(tmp_path / 'work')
    options = imagenet_folder(tiny_imagenet)
    run_tool(['tools/train.py', RESNET18, '--work-dir', work,
              '--cfg-options', *options])
    checkpoint = osp.join(work, 'epoch_1.pth')
    assert osp.isfile(checkpoint)
    proc = run_tool(['tools/test.py', RESNET18, checkpoint, '--work-dir',
                     work, '--cfg-options', *options])
    assert 'accuracy/top1: ' in proc.stdout
    line = one_line_error(['tools/train.py', 'mmpretrain::resnet/nope.py'])
    assert line == 'error: config file mmpretrain::resnet/nope.py does ' \
        'not exist'


@pytest.mark.slow
def test_swapping_in_bireal_names_the_leftover_resnet_arguments(
        tiny_imagenet, tmp_path):
    line = one_line_error([
        'tools/train.py', RESNET18, '--work-dir', str(tmp_path),
        '--cfg-options', *imagenet_folder(tiny_imagenet),
        'model.backbone.type=BiRealNet'
    ])
    assert line == (
        "error: BiRealNet does not take the argument(s) 'num_stages', "
        "'style' given in the config; accepted: " + ', '.join(BIREAL_ARGS))

    # the README's recipe: replace the backbone, zero its weights' decay
    config = tmp_path / 'my_bireal.py'
    config.write_text(
        f"_base_ = '{RESNET18}'\n"
        "custom_imports = dict(imports=['mmbireal'], "
        'allow_failed_imports=False)\n'
        "model = dict(backbone=dict(_delete_=True, type='BiRealNet', "
        'depth=18))\n'
        "optim_wrapper = dict(constructor='BinaryOptimWrapperConstructor', "
        'paramwise_cfg=dict(binary_no_decay=True))\n'
        "custom_hooks = [dict(type='WeightDecayZeroHook')]\n")
    work = str(tmp_path / 'recipe')
    proc = run_tool(['tools/train.py', str(config), '--work-dir', work,
                     '--cfg-options', *imagenet_folder(tiny_imagenet)])
    assert ('WeightDecayZeroHook: 16 binary latent weights (' in
            proc.stdout)
    assert 'acts on' not in proc.stdout  # no decay warning
    assert osp.isfile(osp.join(work, 'epoch_1.pth'))


CHECKPOINT_HOOK_ARGS = [a for a in inspect.signature(
    CheckpointHook).parameters if a != 'kwargs']


@pytest.mark.slow
@pytest.mark.parametrize('option, expected', [
    ('model.backbone.depht=18',
     "error: BiRealNet does not take the argument(s) 'depht' given in the "
     'config; accepted: ' + ', '.join(BIREAL_ARGS)),
    ("model.backbone=dict(type='BiRealNet',depth=18)",
     'error: --cfg-options model.backbone=dict(...) is not supported: give '
     'each entry as its own key=value, e.g. model.backbone.type=X '
     'model.backbone.depth=18 (accepted values: numbers, strings, '
     'True/False/None, [a,b] and (a,b))'),
    ('train_cfg.max_epochs=0',
     'error: train_cfg.max_epochs=0; accepted: an integer >= 1'),
    ('default_hooks.checkpoint.intervl=4',
     "error: CheckpointHook does not take the argument(s) 'intervl' given "
     'in the config; accepted: ' + ', '.join(CHECKPOINT_HOOK_ARGS)),
])
def test_config_mistakes(fmnist_available, tmp_path, option, expected):
    assert one_line_error([
        'tools/train.py', QUICK, '--work-dir', str(tmp_path),
        '--cfg-options', *TINY_FMNIST, option
    ]) == expected


def test_unexpected_argument_message_only_for_registry_builds():
    init_default_scope('mmpretrain')
    with pytest.raises(TypeError) as info:
        MODELS.build(dict(type='ImageClassifier',
                          backbone=dict(type='BiRealNet', depht=18)))
    assert unexpected_argument_message(info.value).startswith(
        "BiRealNet does not take the argument(s) 'depht'")
    # the same TypeError outside a config build is a bug: no message
    with pytest.raises(TypeError) as info:
        BiRealNet(depht=18)
    assert unexpected_argument_message(info.value) is None


@pytest.mark.slow
def test_weight_decay_on_binary_weights_warns(fmnist_available, tmp_path):
    options = [*TINY_FMNIST, 'train_cfg.max_epochs=1', 'custom_hooks=[]',
               'optim_wrapper.paramwise_cfg.binary_no_decay=False',
               'optim_wrapper.optimizer.weight_decay=0.0001']
    proc = run_tool(['tools/train.py', QUICK, '--work-dir',
                     str(tmp_path / 'decay'), '--cfg-options', *options])
    warnings = [line for line in proc.stdout.splitlines()
                if 'weight decay (' in line]
    assert len(warnings) == 1
    assert warnings[0].endswith(
        'WARNING - weight decay (0.0001) acts on 16 of 16 binary latent '
        'weights and pulls them to 0, where their signs flip at random: '
        "set optim_wrapper.constructor='BinaryOptimWrapperConstructor' with "
        'paramwise_cfg=dict(binary_no_decay=True) and add '
        "dict(type='WeightDecayZeroHook') to custom_hooks (or set the "
        "optimizer's weight_decay=0)")
    # with the config's own constructor and hook there is nothing to say
    options = [*options[:-3], 'optim_wrapper.optimizer.weight_decay=0.0001']
    proc = run_tool(['tools/train.py', QUICK, '--work-dir',
                     str(tmp_path / 'hook'), '--cfg-options', *options])
    assert 'weight decay (' not in proc.stdout
    assert 'WeightDecayZeroHook: 16 binary latent weights (' in proc.stdout


def test_an_argument_a_parent_class_refuses_names_the_class_built():
    """LinearClsHead hands its **kwargs to ClsHead, which raises: the
    message names the class the config built, with both classes'
    arguments."""
    init_default_scope('mmpretrain')
    with pytest.raises(TypeError) as info:
        MODELS.build(dict(type='LinearClsHead', num_classes=10,
                          in_channels=64, in_channel=64))
    message = unexpected_argument_message(info.value)
    assert message.startswith("LinearClsHead does not take the argument(s) "
                              "'in_channel' given in the config; accepted: ")
    accepted = message.split('accepted: ')[1].split(', ')
    assert {'num_classes', 'in_channels', 'loss', 'topk'} <= set(accepted)


def test_a_dataloader_argument_typo_gets_one_line():
    from mmengine.runner import Runner
    with pytest.raises(TypeError) as info:
        Runner.build_dataloader(dict(
            dataset=list(range(4)), batchsize=2,
            sampler=dict(type='DefaultSampler', shuffle=False)))
    message = unexpected_argument_message(info.value)
    assert message.startswith("a dataloader config does not take "
                              "'batchsize'; accepted: dataset, batch_size,")


def test_a_list_of_dicts_in_cfg_options_gets_one_line():
    parser = argparse.ArgumentParser()
    add_cfg_options(parser)
    with pytest.raises(InputError, match=r"^--cfg-options custom_hooks="
                       r"\[dict\(\.\.\.\)\] is not supported: dicts inside "
                       r"a list"):
        parser.parse_args(['--cfg-options',
                           "custom_hooks=[dict(type='FlipRatioHook')]"])


def test_a_config_inheriting_ours_by_package_builds_without_scope_warnings(
        tmp_path, capfd):
    """``_base_ = 'mmbireal::...'`` puts the config in scope mmbireal;
    MMPretrain's get_model finds that scope in every registry tree."""
    from mmpretrain import get_model
    config = tmp_path / 'mine.py'
    config.write_text(
        "_base_ = 'mmbireal::birealnet/bireal18_1xb64-quick_fmnist.py'\n"
        'model = dict(backbone=dict(base_channels=8, stem_channels=8), '
        'head=dict(in_channels=64))\n')
    capfd.readouterr()
    model = get_model(str(config))
    assert type(model.backbone).__name__ == 'BiRealNet'
    out, err = capfd.readouterr()
    assert 'Failed to search registry' not in out + err


@pytest.mark.parametrize('value', ['runs/dict(v2)', 'ckpts/best_dict(1).pth'])
def test_a_string_that_mentions_dict_is_not_refused(value):
    parser = argparse.ArgumentParser()
    add_cfg_options(parser)
    args = parser.parse_args(['--cfg-options', f'work_dir={value}'])
    assert args.cfg_options['work_dir'] == value
