"""Fixtures: tiny datasets for the tests that run the real tools."""
import os
import os.path as osp

import helpers
import numpy as np
import pytest
from helpers import FMNIST_ROOT


def pytest_configure(config) -> None:
    """Under pytest-xdist each worker gets its share of the cores, so that
    workers do not oversubscribe them (tests that time thread counts set
    their own). Launches of torchrun each get a free port (helpers)."""
    workers = int(os.environ.get('PYTEST_XDIST_WORKER_COUNT', '1'))
    if workers > 1 and 'OMP_NUM_THREADS' not in os.environ:
        import torch
        threads = max(1, len(os.sched_getaffinity(0)) // workers)
        os.environ['OMP_NUM_THREADS'] = str(threads)  # tools' subprocesses
        torch.set_num_threads(threads)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item) -> None:
    """Tools run in subprocesses only in tests marked ``slow``; set before
    any fixture of the test is set up, module-scoped ones included (an
    autouse fixture would come after those)."""
    helpers.SUBPROCESSES_ALLOWED = item.get_closest_marker('slow') is not None


@pytest.fixture(scope='session')
def fmnist_available() -> None:
    if not osp.isfile(osp.join(FMNIST_ROOT, 't10k-labels-idx1-ubyte.gz')):
        pytest.fail('Fashion-MNIST is missing: apt-get install '
                    'dataset-fashion-mnist (tools/setup_env.sh does it)')


@pytest.fixture(scope='session')
def tiny_imagenet(tmp_path_factory) -> str:
    """An ImageNet-format folder: train/ and val/ class folders + meta/."""
    import cv2
    root = tmp_path_factory.mktemp('imagenet')
    rng = np.random.default_rng(0)
    for split, per_class in (('train', 4), ('val', 2)):
        lines = []
        for label, wnid in enumerate(('n01440764', 'n01443537')):
            folder = root / split / wnid
            folder.mkdir(parents=True)
            for i in range(per_class):
                img = rng.integers(0, 256, (60 + 4 * i, 80, 3), np.uint8)
                name = f'{wnid}_{i}.JPEG'
                cv2.imwrite(str(folder / name), img)
                lines.append(f'{wnid}/{name} {label}')
        (root / 'meta').mkdir(exist_ok=True)
        (root / 'meta' / f'{split}.txt').write_text('\n'.join(lines) + '\n')
    return str(root)
