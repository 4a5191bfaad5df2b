"""tools/model_converters/larq_zoo_to_mmbireal.py against larq-zoo's own
model, without TensorFlow: the committed fixture is larq-zoo's BiRealNet at
width 4 with 10 classes (random weights, BN statistics from random images)
with its logits, written by

    MMBIREAL_LARQ_ARGS="--filters 4 --num-classes 10 --size 64 \\
        --num-inputs 2 --clean-size 32 --candidates 8" \\
        bash tools/model_converters/larq_zoo_check.sh tests/fixtures/larq_zoo
"""
import importlib.util
import os
import os.path as osp
import shutil

import h5py  # a test requirement (requirements/convert.txt)
import numpy as np
import pytest
import torch
from gpu_stand_in import OnGPU
from helpers import REPO, run_tool

from mmbireal.utils.paths import file_sha256

FIXTURE = osp.join(REPO, 'tests', 'fixtures', 'larq_zoo')
H5 = osp.join(FIXTURE, 'birealnet_random.h5')
TOOLS = osp.join(REPO, 'tools', 'model_converters')


def _load(name):
    spec = importlib.util.spec_from_file_location(name,
                                                  osp.join(TOOLS,
                                                           f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


convert = _load('larq_zoo_to_mmbireal')
compare = _load('larq_zoo_compare')


@pytest.fixture(scope='module')
def converted():
    return convert.convert_file(H5)


def test_logits_equal_larq_zoos(converted):
    model = compare.build_converted(H5)
    figures = compare.compare(FIXTURE, model)
    assert figures['clean_count'] > 0
    assert figures['general_float64'] < 1e-12  # exact up to rounding
    assert figures['clean_float64'] < 1e-12
    assert figures['clean_float32'] < 1e-4  # the criterion
    assert not compare.failures(figures, 1e-4)


def test_compare_reads_logits_off_the_gpu_and_closes_its_file(monkeypatch):
    """A model on an accelerator gives logits numpy cannot take as they
    are; the reference .npz is closed once read."""

    class OnGpu(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, x, mode):
            return self.model(x, mode=mode).as_subclass(OnGPU)

    opened = []
    load = np.load
    monkeypatch.setattr(np, 'load',
                        lambda *a, **k: opened.append(load(*a, **k)) or
                        opened[-1])
    figures = compare.compare(FIXTURE, OnGpu(compare.build_converted(H5)))
    assert figures['clean_count'] > 0 and not compare.failures(figures, 1e-4)
    assert len(opened) == 1 and opened[0].zip is None  # closed


def test_meta_and_keys(converted):
    meta, state = converted['meta'], converted['state_dict']
    assert meta['filters'] == 4 and meta['num_classes'] == 10
    assert meta['release_file'] is None and meta['padding'] == 'tf_same'
    assert state['backbone.conv1.weight'].shape == (4, 3, 7, 7)
    assert state['backbone.layer4.0.conv.weight'].shape == (32, 16, 3, 3)
    assert state['backbone.layer2.0.downsample.1.weight'].shape == (8, 4, 1,
                                                                     1)
    assert state['head.fc.weight'].shape == (10, 32)
    assert all(v.dtype == torch.float32 for k, v in state.items()
               if not k.endswith('num_batches_tracked'))


def _copy_without(tmp_path, drop, name='model.h5'):
    """The fixture with the layers ``drop(name, group)`` picks removed."""
    path = str(tmp_path / name)
    shutil.copy(H5, path)
    with h5py.File(path, 'r+') as f:
        names = [convert._text(n) for n in f.attrs['layer_names']]
        kept = [n for n in names if not drop(n, f[n])]
        for n in set(names) - set(kept):
            del f[n]
        f.attrs['layer_names'] = [n.encode() for n in kept]
    return path


def test_headless_file(tmp_path):
    path = _copy_without(tmp_path, lambda n, g: n.startswith('dense'))
    result = convert.convert_file(path)
    assert result['meta']['num_classes'] is None
    assert not any(k.startswith('head.') for k in result['state_dict'])
    full = convert.convert_file(H5)['state_dict']
    for key, value in result['state_dict'].items():
        assert torch.equal(value, full[key])


def test_other_layouts_refused_in_one_line(tmp_path):
    path = _copy_without(tmp_path, lambda n, g: n == 'quant_conv2d_15')
    with pytest.raises(convert.ConversionError) as e:
        convert.convert_file(path)
    assert str(e.value) == (
        "not larq-zoo's Bi-Real-18: it has 1 conv7, 15 conv3, 3 conv1, 20 "
        'bn, 1 dense (layers with a 7x7, 3x3, 1x1 kernel, BNs, dense); '
        'expected 1 conv7, 16 conv3, 3 conv1, 20 bn and 0 or 1 dense')
    path = str(tmp_path / 'shape.h5')
    shutil.copy(H5, path)
    with h5py.File(path, 'r+') as f:
        group = f['quant_conv2d_5']
        name = group.attrs['weight_names'][0]
        del group[name]
        group[name] = torch.zeros(3, 3, 8, 9).numpy()
    with pytest.raises(convert.ConversionError,
                       match=r'layer2\.1 kernel has shape \[3, 3, 8, 9\], '
                       r'expected \[3, 3, 8, 8\]'):
        convert.convert_file(path)


def test_release_names_are_checked_by_sha256(tmp_path):
    digest = file_sha256(H5)
    assert convert.check_release(H5, digest) is None
    for name, known in convert.RELEASE_SHA256.items():
        assert convert.check_release('any.h5', known) == name
        copy = str(tmp_path / name)
        shutil.copy(H5, copy)
        with pytest.raises(convert.ConversionError,
                           match=f"not that of larq-zoo's {name}"):
            convert.convert_file(copy)


def test_not_hdf5(tmp_path):
    path = tmp_path / 'x.h5'
    path.write_bytes(b'not hdf5')
    with pytest.raises(convert.ConversionError, match='not an HDF5 file'):
        convert.convert_file(str(path))


@pytest.mark.slow
def test_command_line(tmp_path):
    out = str(tmp_path / 'out.pth')
    proc = run_tool([osp.join(TOOLS, 'larq_zoo_to_mmbireal.py'), H5, out])
    assert "not one of larq-zoo's release files" in proc.stdout
    assert 'filters 4, 10 classes' in proc.stdout
    from mmbireal.utils import load_checkpoint_file
    checkpoint = load_checkpoint_file(out)  # weights-only
    assert set(checkpoint) == {'meta', 'state_dict'}
    bad = str(tmp_path / 'birealnet_weights.h5')
    shutil.copy(H5, bad)
    proc = run_tool([osp.join(TOOLS, 'larq_zoo_to_mmbireal.py'), bad, out],
                    check=False)
    assert proc.returncode == 2 and 'Traceback' not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(
        f'error: cannot convert {bad}: its sha256 ')


LARQ_VENV = os.environ.get(
    'MMBIREAL_LARQ_VENV',
    osp.join(osp.expanduser('~'), '.cache', 'mmbireal', 'larq-venv'))


@pytest.mark.slow
def test_full_width_against_tensorflow(tmp_path):
    """The whole check at larq-zoo's width in its TensorFlow venv (about a
    minute once the venv exists; creating it downloads ~600 MB)."""
    if not osp.isfile(osp.join(LARQ_VENV, '.ready')):
        pytest.skip(f'no TensorFlow venv at {LARQ_VENV}: bash '
                    'tools/model_converters/larq_zoo_check.sh creates it')
    proc = run_tool(['bash', osp.join(TOOLS, 'larq_zoo_check.sh'),
                     str(tmp_path)], timeout=1200)
    assert 'passed: float64 and clean float32 logits' in proc.stdout
    assert '"filters": 64, "num_classes": 1000' in proc.stdout


@pytest.mark.slow
def test_converted_file_runs_in_tools_test(tiny_imagenet, tmp_path):
    """What a user with ImageNet runs: convert, then tools/test.py with the
    config (here at the fixture's width, on a two-class ImageNet folder)."""
    out = str(tmp_path / 'larq.pth')
    run_tool([osp.join(TOOLS, 'larq_zoo_to_mmbireal.py'), H5, out])
    options = [
        'model.backbone.stem_channels=4', 'model.backbone.base_channels=4',
        'model.head.in_channels=32', 'model.head.num_classes=10',
        f'test_dataloader.dataset.data_root={tiny_imagenet}',
        'test_dataloader.batch_size=2', 'test_dataloader.num_workers=0'
    ]
    proc = run_tool([
        'tools/test.py', 'configs/birealnet/bireal18_larq-zoo_in1k.py', out,
        '--work-dir',
        str(tmp_path / 'work'), '--cfg-options', *options
    ])
    assert 'accuracy/top1: ' in proc.stdout
