"""LocalFashionMNIST reads Debian's files in place and checks them."""
import gzip
import shutil

import numpy as np
import pytest
from helpers import FMNIST_ROOT

from mmbireal.datasets import LocalFashionMNIST
from mmbireal.utils.errors import InputError


def test_official_split_sizes_and_labels(fmnist_available):
    test = LocalFashionMNIST(split='test')
    assert len(test) == 10000
    labels = np.array([test.get_data_info(i)['gt_label']
                       for i in range(len(test))])
    # the official test split has exactly 1,000 images of each class
    assert np.bincount(labels).tolist() == [1000] * 10
    sample = test[0]
    assert sample['img'].shape == (28, 28) and sample['img'].dtype == np.uint8
    assert len(test.metainfo['classes']) == 10
    assert len(LocalFashionMNIST(split='train', indices=100)) == 100


def test_missing_folder_names_it_and_the_fix(tmp_path):
    missing = str(tmp_path / 'nowhere')
    with pytest.raises(FileNotFoundError) as info:
        LocalFashionMNIST(data_root=missing)
    assert missing in str(info.value)
    assert 'apt-get install dataset-fashion-mnist' in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match='t10k-images-idx3-ubyte'):
        LocalFashionMNIST(data_root=str(tmp_path), split='test')


def test_half_written_files_are_refused(fmnist_available, tmp_path):
    for name in ('t10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz'):
        shutil.copy(f'{FMNIST_ROOT}/{name}', tmp_path / name)
    images = tmp_path / 't10k-images-idx3-ubyte.gz'
    data = gzip.decompress(images.read_bytes())
    images.write_bytes(gzip.compress(data[:len(data) // 2]))
    with pytest.raises(InputError, match='damaged or half-written'):
        LocalFashionMNIST(data_root=str(tmp_path), split='test')


def test_unknown_split(fmnist_available):
    with pytest.raises(InputError) as info:
        LocalFashionMNIST(split='val')
    assert "'val'" in str(info.value)
    assert "accepted: ['test', 'train']" in str(info.value)
    with pytest.raises(InputError, match=r"split \['train'\]; accepted"):
        LocalFashionMNIST(split=['train'])  # unhashable: no TypeError
