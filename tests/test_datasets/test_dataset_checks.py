"""Dataset configs that cannot work are refused before the run builds them."""
import shutil

import pytest
from helpers import run_tool
from mmengine.config import Config

from mmbireal.datasets import LocalFashionMNIST, check_datasets
from mmbireal.utils.errors import InputError

BIREAL18 = 'configs/birealnet/bireal18_8xb16_in1k.py'


@pytest.fixture
def imagenet_copy(tiny_imagenet, tmp_path):
    root = tmp_path / 'imagenet'
    shutil.copytree(tiny_imagenet, root)
    return root


def imagenet_cfg(root, **train_dataset) -> Config:
    dataset = dict(type='ImageNet', data_root=str(root), split='train')
    dataset.update(train_dataset)
    return Config(dict(train_dataloader=dict(dataset=dataset)))


def check_error(cfg: Config, **kwargs) -> str:
    with pytest.raises(InputError) as info:
        check_datasets(cfg, **kwargs)
    return str(info.value)


def test_a_valid_imagenet_folder_passes(imagenet_copy):
    check_datasets(imagenet_cfg(imagenet_copy))
    check_datasets(imagenet_cfg(imagenet_copy, split='', data_prefix='train'))


@pytest.mark.parametrize('content', ['', '\n  \n'])
def test_empty_annotation_file(imagenet_copy, content):
    ann = imagenet_copy / 'meta' / 'train.txt'
    ann.write_text(content)
    assert check_error(imagenet_cfg(imagenet_copy)) == (
        f'train_dataloader.dataset: annotation file {ann} is empty; it must '
        "list one sample per line ('<image path> <class index>')")


def test_missing_data_root(tmp_path):
    assert check_error(imagenet_cfg(tmp_path / 'nope')) == (
        f'train_dataloader.dataset: data_root {tmp_path}/nope is not a '
        'directory')


def test_missing_explicit_annotation_file(imagenet_copy):
    assert check_error(imagenet_cfg(imagenet_copy, ann_file='meta/x.txt')) \
        == (f'train_dataloader.dataset: annotation file '
            f'{imagenet_copy}/meta/x.txt does not exist')


def test_wrapped_dataset_is_checked_and_splits_are_chosen(imagenet_copy):
    (imagenet_copy / 'meta' / 'val.txt').write_text('')
    cfg = Config(dict(
        train_dataloader=dict(dataset=dict(
            type='RepeatDataset', times=2,
            dataset=imagenet_cfg(imagenet_copy).train_dataloader.dataset)),
        val_dataloader=dict(dataset=dict(
            type='ConcatDataset', datasets=[dict(
                type='ImageNet', data_root=str(imagenet_copy),
                split='val')]))))
    check_datasets(cfg, splits=('train', ))
    assert 'val_dataloader.dataset: annotation file' in check_error(cfg)


def test_other_dataset_types_are_left_to_their_own_checks(tmp_path):
    cfg = Config(dict(test_dataloader=dict(dataset=dict(
        type='LocalFashionMNIST', data_root=str(tmp_path / 'nope')))))
    check_datasets(cfg)  # LocalFashionMNIST reports this itself:
    with pytest.raises(FileNotFoundError, match='apt-get install '
                       'dataset-fashion-mnist'):
        LocalFashionMNIST(data_root=str(tmp_path / 'nope'))


@pytest.mark.slow
def test_train_py_answers_an_empty_annotation_file(imagenet_copy, tmp_path):
    ann = imagenet_copy / 'meta' / 'train.txt'
    ann.write_text('')
    proc = run_tool([
        'tools/train.py', BIREAL18, '--work-dir', str(tmp_path / 'work'),
        '--cfg-options', 'load_from=None',
        f'train_dataloader.dataset.data_root={imagenet_copy}',
        f'val_dataloader.dataset.data_root={imagenet_copy}'
    ], check=False)
    assert proc.returncode == 2
    assert 'Traceback' not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        f'error: train_dataloader.dataset: annotation file {ann} is empty; '
        "it must list one sample per line ('<image path> <class index>')")


@pytest.mark.slow
def test_test_py_checks_only_the_test_set(imagenet_copy, tmp_path):
    (imagenet_copy / 'meta' / 'val.txt').write_text('')
    proc = run_tool([
        'tools/test.py', BIREAL18, str(tmp_path / 'missing.pth')], check=False)
    # the checkpoint is checked first
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        f'error: checkpoint {tmp_path / "missing.pth"} does not exist')
    ckpt = tmp_path / 'model.pth'
    ckpt.write_bytes(b'')
    proc = run_tool([
        'tools/test.py', BIREAL18, str(ckpt), '--work-dir',
        str(tmp_path / 'work'), '--cfg-options',
        f'test_dataloader.dataset.data_root={imagenet_copy}'
    ], check=False)
    # train_dataloader's data/imagenet does not exist here: not reported
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        f"error: test_dataloader.dataset: annotation file "
        f"{imagenet_copy}/meta/val.txt is empty; it must list one sample per "
        "line ('<image path> <class index>')")
