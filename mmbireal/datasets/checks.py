"""Checks of a config's datasets before a run builds them.

MMPretrain's folder and annotation-file datasets (``CustomDataset`` and its
subclasses such as ``ImageNet``) fail deep inside mmengine on an empty
annotation file ("need at least one array to concatenate") and scan the
wrong folder when ``data_root`` is mistyped. These checks find such
problems from the config alone, without reading a single image, and say
which dataset and which file is wrong.
"""
import os.path as osp
from typing import Iterator, Sequence, Tuple

from mmengine.config import ConfigDict
from mmpretrain.datasets import CustomDataset
from mmpretrain.registry import DATASETS

from mmbireal.utils.errors import InputError

SPLITS = ('train', 'val', 'test')


def _dataset_cfgs(cfg: ConfigDict,
                  splits: Sequence[str]) -> Iterator[Tuple[str, dict]]:
    """``(name, dataset cfg)`` of the splits' dataloaders, through wrappers
    such as ``RepeatDataset`` (``dataset=``) and ``ConcatDataset``
    (``datasets=``)."""
    for split in splits:
        loader = cfg.get(f'{split}_dataloader')
        if not loader:
            continue
        todo = [loader.get('dataset')]
        while todo:
            dataset = todo.pop()
            if not isinstance(dataset, dict):
                continue
            yield f'{split}_dataloader.dataset', dataset
            todo.append(dataset.get('dataset'))
            todo.extend(dataset.get('datasets') or [])


def _is_local_custom_dataset(dataset: dict) -> bool:
    dataset_type = dataset.get('type')
    if isinstance(dataset_type, str):
        dataset_type = DATASETS.get(dataset_type)
    return (isinstance(dataset_type, type)
            and issubclass(dataset_type, CustomDataset)
            and '://' not in str(dataset.get('data_root', '')))


def _annotation_file(dataset: dict) -> str:
    """The annotation file the dataset will read, '' for a folder scan."""
    root = dataset.get('data_root') or ''
    ann_file = dataset.get('ann_file') or ''
    split = dataset.get('split')
    if not ann_file and split:
        # ImageNet-style datasets use meta/<split>.txt when it exists
        candidate = osp.join(root, 'meta', f'{split}.txt')
        return candidate if osp.isfile(candidate) else ''
    if ann_file and not osp.isabs(ann_file):
        ann_file = osp.join(root, ann_file)
    return ann_file


def check_datasets(cfg: ConfigDict, splits: Sequence[str] = SPLITS) -> None:
    """Raise :class:`InputError` naming the dataset and the file if a local
    folder/annotation-file dataset of ``cfg`` cannot work: a missing
    ``data_root``, a missing annotation file or one that lists nothing.

    Args:
        cfg (ConfigDict): The run's config.
        splits (Sequence[str]): Which dataloaders to check, of ``'train'``,
            ``'val'`` and ``'test'``. Defaults to all three.
    """
    for name, dataset in _dataset_cfgs(cfg, splits):
        if not _is_local_custom_dataset(dataset):
            continue
        root = dataset.get('data_root')
        if root and not osp.isdir(root):
            raise InputError(f'{name}: data_root {root} is not a directory')
        ann_file = _annotation_file(dataset)
        if not ann_file:
            continue
        if not osp.isfile(ann_file):
            raise InputError(
                f'{name}: annotation file {ann_file} does not exist')
        with open(ann_file, encoding='utf-8', errors='replace') as f:
            if not any(line.strip() for line in f):
                raise InputError(
                    f'{name}: annotation file {ann_file} is empty; it must '
                    "list one sample per line ('<image path> <class index>')")
