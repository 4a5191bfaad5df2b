"""The tools' one-line error handling (mmbireal.utils.launch): what a
user can fix exits with status 2 and one line; a bug keeps its
traceback."""
import os.path as osp

import pytest
import torch
from helpers import REPO
from mmengine.config import Config
from mmpretrain.registry import MODELS

from mmbireal.utils import CheckpointError, InputError, InvalidLossError
from mmbireal.utils.launch import (
    check_resume_source,
    check_start_checkpoint,
    fail,
    load_config,
    run_or_fail,
)
from mmbireal.utils.resume import resume_point


def _exit_line(capsys, step, **kwargs) -> str:
    with pytest.raises(SystemExit) as info:
        run_or_fail(step, **kwargs)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1, err
    return err


def _raise(error):

    def step():
        raise error

    return step


def test_fail_prints_one_line_and_exits_2(capsys):
    with pytest.raises(SystemExit) as info:
        fail('the thing was wrong; accepted: a, b')
    assert info.value.code == 2
    assert capsys.readouterr().err == (
        'error: the thing was wrong; accepted: a, b\n')


@pytest.mark.parametrize('error', [
    InputError('bad depth'), CheckpointError('bad depth'),
    InvalidLossError('bad depth'), FileNotFoundError('bad depth')
])
def test_user_errors_end_in_their_message(capsys, error):
    assert _exit_line(capsys, _raise(error)) == 'error: bad depth\n'


def test_a_key_error_listed_in_also_prints_its_text_not_its_repr(capsys):
    step = _raise(KeyError("'Foo' has no training log"))
    assert _exit_line(capsys, step, also=(KeyError, )) == (
        "error: 'Foo' has no training log\n")


@pytest.mark.parametrize('error', [
    RuntimeError('a bug'), KeyError('a bug'),
    TypeError("f() got an unexpected keyword argument 'x'")
])
def test_other_errors_keep_their_traceback(error):
    with pytest.raises(type(error)):
        run_or_fail(_raise(error))


def test_a_config_entry_the_class_does_not_take_is_one_line(capsys):
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        err = _exit_line(
            capsys, lambda: MODELS.build(
                dict(type='BiRealNet', depth=18, depht=18)))
    assert err.startswith('error: ') and "'depht'" in err


def test_load_config_names_the_file_and_the_error(tmp_path, capsys):
    bad = tmp_path / 'bad.py'
    bad.write_text('model = dict(\n')
    with pytest.raises(SystemExit) as info:
        load_config(str(bad))
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f'error: cannot read config {bad}: SyntaxError')
    assert err.count('\n') == 1


def test_load_config_of_a_missing_file(tmp_path, capsys):
    with pytest.raises(SystemExit):
        load_config(str(tmp_path / 'nope.py'))
    err = capsys.readouterr().err
    assert err.startswith('error: ') and 'nope.py' in err
    assert err.count('\n') == 1


@pytest.mark.parametrize('given,expected', [
    ('bireal18_8xb16_in1k.py',
     'config file bireal18_8xb16_in1k.py does not exist; did you mean '
     'configs/birealnet/bireal18_8xb16_in1k.py?'),
    ('configs/birealnet/bireal34_8xb128_in1k',  # no .py
     'did you mean configs/birealnet/bireal34_8xb128_in1k.py?'),
    ('configs/birealnet/', 'config configs/birealnet/ is a folder; '
     'accepted: a config file, e.g. configs/birealnet/bireal18_8xb16_in1k.py'),
    ('nothing_like_ours.py', 'accepted: a config file, e.g. configs/'
     'birealnet/bireal18_8xb16_in1k.py, or mmbireal::birealnet/NAME.py'),
])
def test_a_config_not_found_says_what_is_accepted(capsys, monkeypatch,
                                                  given, expected):
    monkeypatch.chdir(REPO)
    with pytest.raises(SystemExit):
        load_config(given)
    err = capsys.readouterr().err
    assert err.startswith('error: ') and expected in err
    assert err.count('\n') == 1


def test_a_config_elsewhere_is_suggested_by_its_package_path(
        tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # not in the checkout
    with pytest.raises(SystemExit):
        load_config('bireal18_8xb16_in1k.py')
    assert capsys.readouterr().err.endswith(
        'did you mean mmbireal::birealnet/bireal18_8xb16_in1k.py?\n')


@pytest.mark.parametrize('type_name,expected', [
    ('BiRealNett', "type 'BiRealNett' in the config is not a registered "
     'mmpretrain model; closest registered: BiRealNet,'),
    ('LinearClsHed', 'closest registered: LinearClsHead,'),
    ('Qwxz', 'names are registered'),
])
def test_an_unknown_type_names_the_closest_registered_ones(
        capsys, type_name, expected):
    err = _exit_line(capsys, lambda: MODELS.build(dict(type=type_name)),
                     also=(KeyError, ))
    assert err.startswith('error: ') and expected in err


@pytest.mark.parametrize('text,expected', [
    ('DefaultSamplr is not in the mmpretrain::data sampler registry',
     "type 'DefaultSamplr' in the config is not a registered mmpretrain data "
     'sampler; closest registered: DefaultSampler'),
    ('Foo is not in the json::model registry',  # no json.registry module
     "type 'Foo' in the config is not a registered json model; see the "
     'registry of the package that should provide it'),
    ('Runnerr is not in the runner registry',  # mmengine's, no scope
     "type 'Runnerr' in the config is not a registered runner; closest "
     'registered: Runner'),
])
def test_any_registry_lookup_failure_is_one_line(capsys, text, expected):
    err = _exit_line(capsys, _raise(KeyError(text)), also=(KeyError, ))
    assert err.startswith(f'error: {expected}')


def test_other_packages_config_paths_get_no_suggestion(capsys):
    with pytest.raises(SystemExit):
        load_config('mmpretrain::resnet/resnet18_8xb32_in1k_x.py')
    assert capsys.readouterr().err.endswith('in1k_x.py does not exist\n')


def test_a_config_given_as_checkpoint_is_named_as_such(tmp_path):
    from mmbireal.utils import load_checkpoint_file
    config = tmp_path / 'model.py'
    config.write_text('model = dict()\n')
    with pytest.raises(CheckpointError, match=(
            r'checkpoint .*model.py is a config file; expected a .pth '
            r'checkpoint or a packed 1-bit file')):
        load_checkpoint_file(str(config))


def test_cfg_options_without_a_value_are_one_line(capsys):
    import argparse

    from mmbireal.utils.config import add_cfg_options
    parser = argparse.ArgumentParser()
    add_cfg_options(parser)
    with pytest.raises(InputError, match=(
            "--cfg-options: 'model.backbone.depth' has no value; write "
            r'key=value, e.g. model.backbone.depth=X')):
        parser.parse_args(['--cfg-options', 'model.backbone.depth'])


def _moved_work_dir(tmp_path):
    """A work dir moved after training: ``last_checkpoint`` names
    ``iter_6.pth`` at the old path; ``epoch_1.pth`` is older."""
    work = tmp_path / 'moved'
    work.mkdir()
    for name in ('epoch_1.pth', 'iter_6.pth'):
        torch.save({'name': name}, work / name)
    (work / 'last_checkpoint').write_text(
        str(tmp_path / 'old' / 'iter_6.pth'))
    return work


def test_resume_point_finds_the_recorded_file_in_a_moved_work_dir(tmp_path):
    work = _moved_work_dir(tmp_path)
    assert resume_point(str(work)) == str(work / 'iter_6.pth')
    # the record's file cut short while saving: the newest whole epoch
    whole = (work / 'iter_6.pth').read_bytes()
    (work / 'iter_6.pth').write_bytes(whole[:len(whole) // 2])
    assert resume_point(str(work)) == str(work / 'epoch_1.pth')
    (work / 'epoch_1.pth').unlink()
    assert resume_point(str(work)) is None


def test_resume_point_takes_the_highest_epoch_number_only(tmp_path):
    """Digits in the folder's name or an epoch_final.pth do not count."""
    import torch
    work = tmp_path / 'bireal18_1xb64_fmnist'
    work.mkdir()
    for name in ('epoch_2.pth', 'epoch_10.pth', 'epoch_final.pth'):
        torch.save({}, work / name)
    assert resume_point(str(work)) == str(work / 'epoch_10.pth')
    (work / 'epoch_10.pth').unlink()
    (work / 'epoch_2.pth').unlink()
    assert resume_point(str(work)) is None  # nothing numbered to resume


def test_resume_without_a_path_pins_the_shared_rule(tmp_path, capsys):
    """``--resume`` resumes what resume_point finds (mmengine would follow
    the record to the old path); with nothing there it stops."""
    work = _moved_work_dir(tmp_path)
    cfg = Config(dict(work_dir=str(work), resume=True, load_from=None))
    check_resume_source(cfg, 'auto')
    assert cfg.load_from == str(work / 'iter_6.pth')
    cfg = Config(dict(work_dir=str(tmp_path / 'empty'), resume=True,
                      load_from=None))
    with pytest.raises(SystemExit) as info:
        check_resume_source(cfg, 'auto')
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith('error: --resume: no checkpoint to resume in ')
    assert err.count('\n') == 1


def test_resume_from_a_file_without_training_state_is_one_line(
        tmp_path, capsys):
    """A packed file or bare weights have no epoch to resume from: one line
    pointing to load_from, instead of mmengine's KeyError."""
    from helpers import small_fmnist_model

    from mmbireal.deploy import export_packed
    packed = str(tmp_path / 'model.bin.pth')
    export_packed(small_fmnist_model(), packed)
    weights = str(tmp_path / 'weights.pth')
    torch.save({'state_dict': {}}, weights)
    cfg = Config(dict(work_dir=str(tmp_path), resume=True, load_from=None))
    for path, what in ((packed, 'a packed 1-bit file'),
                       (weights, 'weights without the training state')):
        with pytest.raises(SystemExit) as info:
            check_resume_source(cfg, path)
        assert info.value.code == 2
        assert capsys.readouterr().err == (
            f'error: --resume: {path} is {what}, with no epoch to resume '
            'from; to start training from its weights, use --cfg-options '
            f'load_from={path} without --resume\n')
    training = str(tmp_path / 'iter_50.pth')
    torch.save({'meta': {'epoch': 0, 'iter': 50}, 'state_dict': {}},
               training)
    check_resume_source(cfg, training)  # resumes: no exit


def test_the_start_checkpoint_check_reads_the_shared_rule(tmp_path,
                                                           monkeypatch):
    import mmbireal.apis
    import mmbireal.utils.launch as launch
    work = _moved_work_dir(tmp_path)
    checked = []
    monkeypatch.setattr(mmbireal.apis, 'build_model', lambda cfg: None)
    monkeypatch.setattr(launch, 'check_checkpoint_fits',
                        lambda model, path, prefixes: checked.append(path))
    cfg = Config(dict(work_dir=str(work), resume=True, load_from=None))
    check_start_checkpoint(cfg, head_may_differ=True)
    assert checked == [str(work / 'iter_6.pth')]


def test_a_tool_of_another_checkout_warns_in_one_line(tmp_path, capsys):
    """The shared venv's mmbireal follows the checkout that set it up
    last; a tool of another checkout says so instead of running the other
    one's code silently."""
    from mmbireal.utils.launch import warn_other_checkout
    warn_other_checkout(osp.join(REPO, 'tools', 'train.py'))
    assert capsys.readouterr().err == ''
    other = tmp_path / 'other-checkout'
    (other / 'mmbireal').mkdir(parents=True)
    (other / 'tools').mkdir()
    warn_other_checkout(str(other / 'tools' / 'train.py'))
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and err.startswith(
        f'warning: this is {other}, but mmbireal comes from {REPO}: run '
        '`bash tools/setup_env.sh` here')
    # a wheel's tools (site-packages/mmbireal/.mim/tools) have no checkout
    warn_other_checkout(str(tmp_path / '.mim' / 'tools' / 'train.py'))
    assert capsys.readouterr().err == ''


def test_a_head_that_does_not_fit_the_backbone_stops_in_one_line(capsys):
    from helpers import small_fmnist_model

    from mmbireal.utils.launch import check_head_fits_backbone
    check_head_fits_backbone(small_fmnist_model())  # fits: nothing
    with pytest.raises(SystemExit):
        check_head_fits_backbone(
            small_fmnist_model(**{'model.head.in_channels': 512}))
    assert capsys.readouterr().err.strip() == (
        'error: model.head.in_channels is 512, but the backbone (BiRealNet) '
        'gives 128 channels: set model.head.in_channels=128')


@pytest.mark.slow  # builds every config's model
def test_every_config_has_a_head_that_fits_its_backbone():
    from helpers import birealnet_configs

    from mmbireal.apis import build_model
    from mmbireal.utils.launch import check_head_fits_backbone
    for *_, cfg in birealnet_configs():
        check_head_fits_backbone(build_model(cfg))  # exits on a mismatch


def test_the_head_check_follows_the_stage_the_head_reads(capsys):
    """With out_indices=(2, ) the head reads stage 3, not the last one."""
    from helpers import small_fmnist_model

    from mmbireal.utils.launch import check_head_fits_backbone
    early = {'model.backbone.out_indices': (2, )}
    model = small_fmnist_model(**early, **{'model.head.in_channels': 64})
    check_head_fits_backbone(model)  # stage 3 of the narrow model: 64
    x = torch.randn(1, 1, 28, 28)
    assert model(x, mode='tensor').shape == (1, 10)


def test_the_head_check_reads_the_last_stage_listed_in_any_order():
    """out_indices=(3, 1): the backbone returns stage 2 then stage 4, and
    the head reads stage 4 (128 channels in the narrow model)."""
    from helpers import small_fmnist_model

    from mmbireal.utils.launch import check_head_fits_backbone
    unordered = {'model.backbone.out_indices': (3, 1)}
    check_head_fits_backbone(
        small_fmnist_model(**unordered, **{'model.head.in_channels': 128}))
    with pytest.raises(SystemExit):
        check_head_fits_backbone(
            small_fmnist_model(**unordered, **{'model.head.in_channels': 32}))
