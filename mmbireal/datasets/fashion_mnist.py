"""Fashion-MNIST read in place from its IDX files, never downloaded."""
import os.path as osp
import warnings
import zlib
from typing import List, Optional

import numpy as np
from mmpretrain.datasets import BaseDataset
from mmpretrain.datasets.categories import FASHIONMNIST_CATEGORITES
from mmpretrain.datasets.mnist import read_sn3_pascalvincent_tensor
from mmpretrain.registry import DATASETS

from mmbireal.utils.errors import InputError

# Where Debian's ``dataset-fashion-mnist`` package puts the files.
DEFAULT_ROOT = '/usr/share/datasets/fashion-mnist'
INSTALL_HINT = ('install it with `apt-get install dataset-fashion-mnist` or '
                'set data_root to a folder holding the four IDX files')


def _read_idx(path: str) -> np.ndarray:
    """One IDX file as an array, with MMPretrain's reader."""
    with warnings.catch_warnings():
        # it wraps a read-only buffer in a tensor; nothing writes to it
        warnings.filterwarnings(
            'ignore', message='The given NumPy array is not writable',
            category=UserWarning)
        return read_sn3_pascalvincent_tensor(path, strict=True).numpy()


@DATASETS.register_module()
class LocalFashionMNIST(BaseDataset):
    """Fashion-MNIST from the four IDX files in ``data_root``.

    Unlike MMPretrain's ``FashionMNIST`` it reads the files where they are,
    gzipped (``*-ubyte.gz``, as Debian ships them) or not, never downloads,
    and selects the split by ``split`` alone. The official splits have
    60,000 training and 10,000 test images; a split of another size means a
    damaged or half-written copy and is refused.

    Args:
        data_root (str): Folder with ``{train,t10k}-{images,labels}-idx?-
            ubyte[.gz]``. Defaults to Debian's install location.
        split (str): ``'train'`` or ``'test'``. Defaults to ``'train'``.
        metainfo (dict, optional): Overrides :attr:`METAINFO` (e.g.
            ``dict(classes=[...])``, other class names). Defaults to None.
        **kwargs: Other arguments of
            :class:`mmpretrain.datasets.BaseDataset` (``pipeline``,
            ``indices`` for a subset, ``test_mode``...).

    Example:
        >>> train_dataloader = dict(dataset=dict(
        ...     type='LocalFashionMNIST', split='train', indices=12000,
        ...     pipeline=[dict(type='PackInputs')]))
    """

    METAINFO = {'classes': FASHIONMNIST_CATEGORITES}
    SPLITS = {'train': ('train', 60000), 'test': ('t10k', 10000)}

    def __init__(self,
                 data_root: str = DEFAULT_ROOT,
                 split: str = 'train',
                 metainfo: Optional[dict] = None,
                 **kwargs) -> None:
        if not isinstance(split, str) or split not in self.SPLITS:
            raise InputError(f'invalid Fashion-MNIST split {split!r}; '
                             f'accepted: {sorted(self.SPLITS)}')
        self.split = split
        super().__init__(
            ann_file='', metainfo=metainfo, data_root=data_root, **kwargs)

    def _find(self, stem: str) -> str:
        for name in (f'{stem}.gz', stem):
            path = osp.join(self.data_root, name)
            if osp.isfile(path):
                return path
        raise FileNotFoundError(
            f'Fashion-MNIST file {stem}[.gz] not found in '
            f'{self.data_root!r}: {INSTALL_HINT}')

    def load_data_list(self) -> List[dict]:
        if not osp.isdir(self.data_root):
            raise FileNotFoundError(
                f'Fashion-MNIST folder {self.data_root!r} does not exist: '
                f'{INSTALL_HINT}')
        prefix, expected = self.SPLITS[self.split]
        paths = [
            self._find(f'{prefix}-images-idx3-ubyte'),
            self._find(f'{prefix}-labels-idx1-ubyte')
        ]
        try:
            images, labels = (_read_idx(p) for p in paths)
        except (AssertionError, EOFError, OSError, ValueError,
                zlib.error) as e:
            raise InputError(
                f'Fashion-MNIST {self.split} files in {self.data_root!r} are '
                f'damaged or half-written ({type(e).__name__}: {e}); '
                f'{INSTALL_HINT}') from None
        if not (len(images) == len(labels) == expected):
            raise InputError(
                f'Fashion-MNIST {self.split} split in {self.data_root!r} has '
                f'{len(images)} images and {len(labels)} labels, expected '
                f'{expected} of each; {INSTALL_HINT}')
        return [
            dict(img=img, gt_label=int(label))
            for img, label in zip(images, labels)
        ]
