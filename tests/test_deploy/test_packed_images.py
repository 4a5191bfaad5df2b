"""The packed model on images: the preprocessing and class names the
packed file records, its image call against the config's test pipeline and
the float-emulated model, old files without them, and the classify
command."""
import copy
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
from helpers import (
    FMNIST_QUICK_CFG,
    NARROW,
    REPO,
    import_tool_file,
    run_tool,
    small_fmnist_model,
)
from mmengine.dataset import Compose
from mmpretrain.datasets.categories import FASHIONMNIST_CATEGORITES
from mmpretrain.registry import TRANSFORMS

from mmbireal.deploy import (
    PackedBiRealNet,
    load_packed,
    pack_classifier,
    prepare_image,
    preprocessing_meta,
)
from mmbireal.deploy.export import export_packed
from mmbireal.deploy.images import read_image
from mmbireal.utils import CheckpointError, InputError
from mmbireal.utils.launch import load_config

IN1K_CFG = osp.join(REPO, 'configs', 'birealnet', 'bireal18_8xb16_in1k.py')


@pytest.fixture(scope='module')
def fmnist_cfg():
    cfg = load_config(FMNIST_QUICK_CFG)
    cfg.merge_from_dict(NARROW)
    return cfg


@pytest.fixture(scope='module')
def exported(fmnist_cfg, tmp_path_factory):
    """``(float model, packed file)`` of a random-weight model."""
    model = small_fmnist_model()
    path = str(tmp_path_factory.mktemp('packed') / 'fmnist.bin.pth')
    export_packed(model, path, fmnist_cfg)
    return model, path


@pytest.fixture(scope='module')
def images(tmp_path_factory):
    """A grayscale and a colour PNG of other sizes than the network's."""
    root = tmp_path_factory.mktemp('images')
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, (45, 37), dtype=np.uint8)
    colour = rng.integers(0, 256, (30, 52, 3), dtype=np.uint8)
    paths = [str(root / 'gray.png'), str(root / 'colour.png')]
    for path, image in zip(paths, (gray, colour)):
        assert cv2.imwrite(path, image)
    return paths, gray


def test_packed_file_records_preprocessing_and_classes(exported):
    meta = load_packed(exported[1], backend='torch').meta
    assert meta['mean'] == pytest.approx([72.94])
    assert meta['std'] == pytest.approx([90.02])
    assert meta['to_rgb'] is False
    assert meta['resize_short'] == 32
    assert meta['crop_size'] == [28, 28]
    assert meta['classes'] == list(FASHIONMNIST_CATEGORITES)


def test_imagenet_config_gives_its_pipeline_and_1000_classes():
    meta = preprocessing_meta(load_config(IN1K_CFG))
    assert (meta['resize_short'], meta['crop_size']) == (256, [224, 224])
    assert len(meta['classes']) == 1000


@pytest.mark.parametrize('pipeline, unreplayed', [
    # a resize then a crop: classify() would resize straight to the crop
    ([dict(type='Resize', scale=36), dict(type='CenterCrop', crop_size=28)],
     'CenterCrop(crop_size=28)'),
    ([dict(type='ResizeEdge', scale=32, edge='short', backend='pillow',
           interpolation='bicubic'), dict(type='CenterCrop', crop_size=28)],
     "ResizeEdge(scale=32, edge='short', backend='pillow', "
     "interpolation='bicubic')"),
    ([dict(type='EfficientNetCenterCrop', crop_size=28)],
     'EfficientNetCenterCrop(crop_size=28)'),
])
def test_a_pipeline_classify_would_not_reproduce_gives_tensors_only(
        fmnist_cfg, tmp_path, images, pipeline, unreplayed):
    cfg = copy.deepcopy(fmnist_cfg)
    cfg.test_dataloader.dataset.pipeline = [
        dict(type='ToGrayscale'), *pipeline, dict(type='PackInputs')]
    meta = preprocessing_meta(cfg)
    assert meta['unreplayed_step'] == unreplayed
    assert meta['crop_size'] is None and meta['resize_short'] is None
    path = str(tmp_path / 'tensors-only.pth')
    export_packed(small_fmnist_model(), path, cfg)
    with pytest.raises(InputError, match='takes normalised tensors only: '
                       "its config's test pipeline has " + unreplayed[:10]):
        load_packed(path, backend='torch').classify(images[0])
    # the repo's Fashion-MNIST and ImageNet pipelines are reproduced
    assert 'unreplayed_step' not in preprocessing_meta(fmnist_cfg)
    assert 'unreplayed_step' not in preprocessing_meta(load_config(IN1K_CFG))


def test_image_call_is_the_config_pipeline_and_the_float_prediction(
        exported, fmnist_cfg, images):
    model, path = exported
    paths, _ = images
    packed = load_packed(path)
    x = packed.preprocess(paths)
    # the config's own test pipeline on the file read in colour, as the
    # inferencer reads it, then the model's data preprocessor
    pipeline = Compose(
        [TRANSFORMS.build(t) for t in fmnist_cfg.test_dataloader.dataset.
         pipeline])
    batch = [pipeline(dict(img=cv2.imread(p))) for p in paths]
    data = model.data_preprocessor(
        dict(inputs=[b['inputs'] for b in batch],
             data_samples=[b['data_samples'] for b in batch]), False)
    assert torch.equal(x, data['inputs'])

    with torch.no_grad():
        ref = model(x, mode='tensor').softmax(1)
    top = packed.classify(paths, topk=3)
    assert [t[0].index for t in top] == ref.argmax(1).tolist()
    for predictions, scores in zip(top, ref):
        assert len(predictions) == 3
        assert [p.score for p in predictions] == sorted(
            (p.score for p in predictions), reverse=True)
        for p in predictions:
            assert p.name == FASHIONMNIST_CATEGORITES[p.index]
            assert p.score == pytest.approx(scores[p.index].item(),
                                            abs=1e-3)


def test_arrays_are_taken_as_their_files(exported, images):
    paths, gray = images
    packed = load_packed(exported[1])
    colour = cv2.imread(paths[1])
    from_arrays = packed.preprocess([gray, gray[:, :, None], colour])
    from_files = packed.preprocess([paths[0], paths[0], paths[1]])
    assert torch.equal(from_arrays, from_files)


def test_colour_networks_get_rgb_in_the_configs_order():
    bgr = np.zeros((2, 2, 3), dtype=np.uint8)
    bgr[...] = (10, 20, 30)
    x = prepare_image(bgr, 3, True, None, (2, 2), [0, 0, 0], [1, 1, 1])
    assert x[:, 0, 0].tolist() == [30, 20, 10]
    gray = np.full((4, 6), 7, dtype=np.uint8)
    x = prepare_image(gray, 3, False, 2, (2, 2), [1, 1, 1], [2, 2, 2])
    assert x.shape == (3, 2, 2) and torch.all(x == 3)


def test_bad_images_give_one_line_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match='image file not found'):
        read_image(str(tmp_path / 'missing.png'))
    text = tmp_path / 'notes.png'
    text.write_text('not an image')
    with pytest.raises(InputError, match='cannot read'):
        read_image(str(text))
    with pytest.raises(InputError, match='uint8'):
        read_image(np.zeros((4, 4), dtype=np.float32))


def test_old_packed_file_loads_and_says_what_images_need(tmp_path, images):
    model = small_fmnist_model()
    # no config, and no to_rgb: the meta of files written before them
    packed = pack_classifier(model)
    del packed['meta']['to_rgb']
    assert set(packed['meta']) == {'act_binarizer', 'weight_binarizer',
                                   'mean', 'std'}
    path = str(tmp_path / 'old.bin.pth')
    torch.save(packed, path)
    old = load_packed(path)
    assert old.classes is None and old.meta.get('crop_size') is None
    x = torch.randn(1, 1, 28, 28)
    with torch.no_grad():
        assert torch.allclose(old(x), model(x, mode='tensor'), atol=1e-3)
    with pytest.raises(InputError) as info:
        old.classify(images[0])
    message = str(info.value)
    assert '\n' not in message and 'crop_size' in message
    assert 'export it again' in message


# ---------------------------------------------------------------------------
# tools/deployment/classify.py
# ---------------------------------------------------------------------------
def _printed(stdout):
    """``{file: [(score, index, name), ...]}`` of classify.py's output."""
    result, current = {}, None
    for line in stdout.splitlines():
        if not line.startswith('  '):
            current = result.setdefault(line, [])
            continue
        score, index, name = line.split(maxsplit=2)
        current.append((float(score), int(index), name))
    return result


def _classify_tool():
    return import_tool_file('tools', 'deployment', 'classify.py')


def test_classify_tool_decodes_one_chunk_at_a_time(tmp_path, monkeypatch):
    """Long file lists: only the files of the chunk being classified are
    decoded (every one is only checked for existence up front)."""
    tool = _classify_tool()
    paths = []
    for i in range(5):
        paths.append(str(tmp_path / f'{i}.png'))
        cv2.imwrite(paths[-1], np.full((8, 8), i, np.uint8))
    decoded = []
    monkeypatch.setattr(tool, 'read_image',
                        lambda p: decoded.append(p) or read_image(p))
    chunks = tool.decoded_chunks(paths, size=2)
    first = next(chunks)
    assert len(first) == 2 and decoded == paths[:2]
    assert [len(c) for c in chunks] == [2, 1] and decoded == paths


def test_classify_tool_refuses_backend_with_config(capsys):
    with pytest.raises(SystemExit) as info:
        _classify_tool().parse_args(['ckpt.pth', 'a.png', '--config',
                                     'c.py', '--backend', 'native'])
    assert info.value.code == 2
    assert capsys.readouterr().err == (
        'error: --backend applies to a packed file, not to --config (the '
        'float model runs in PyTorch)\n')


def test_classify_tool_device(tmp_path, monkeypatch, capsys):
    """--device: the float model is built there (by default the GPU if
    there is one, as MMPretrain's tools do); one line for a device this
    machine lacks or a non-CPU device with a packed file."""
    tool = _classify_tool()
    config = ['ckpt.pth', 'a.png', '--config', FMNIST_QUICK_CFG]
    assert tool.parse_args(config).device == (
        'cuda' if torch.cuda.is_available() else 'cpu')
    for bad in ('gpu', 'cuda:99', 'meta'):
        with pytest.raises(SystemExit) as info:
            tool.parse_args([*config, '--device', bad])
        assert info.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith(f'error: --device {bad} is not available '
                              'here; accepted: cpu') and err.count('\n') == 1
    # as if this machine had two GPUs
    monkeypatch.setattr(tool, 'check_device', torch.device)
    with pytest.raises(SystemExit):
        tool.parse_args(['packed.bin.pth', 'a.png', '--device', 'cuda:1'])
    assert capsys.readouterr().err == (
        'error: --device cuda:1 applies to --config: a packed file runs on '
        'the CPU\n')
    built = []

    class Built(Exception):
        """Raised once the model would be built: nothing to run after."""

    def build_model(cfg, checkpoint, device='cpu'):
        built.append((checkpoint, device))
        raise Built

    monkeypatch.setattr(tool, 'build_model', build_model)
    image = tmp_path / 'a.png'
    cv2.imwrite(str(image), np.zeros((8, 8), np.uint8))
    checkpoint = tmp_path / 'ckpt.pth'
    checkpoint.touch()
    with pytest.raises(Built):
        tool.main([str(checkpoint), str(image), '--config', FMNIST_QUICK_CFG,
                   '--device', 'cuda:1'])
    assert built == [(str(checkpoint), 'cuda:1')]
    # a model-zoo name with --config too, as without it
    from mmbireal.utils.model_zoo import shipped_weights
    name, weights = sorted(shipped_weights().items())[0]
    with pytest.raises(Built):
        tool.main([name, str(image), '--config', FMNIST_QUICK_CFG])
    assert built[-1][0] == weights
    with pytest.raises(SystemExit):
        tool.main(['no-such-model', str(image), '--config', FMNIST_QUICK_CFG])
    assert capsys.readouterr().err.startswith(
        'error: no-such-model: no such file, nor the name of a model-zoo')


@pytest.mark.slow
def test_classify_tool_with_packed_file_and_checkpoint(
        exported, images, tmp_path):
    model, path = exported
    paths, _ = images
    proc = run_tool(['tools/deployment/classify.py', path, *paths,
                     '--topk', '2'])
    printed = _printed(proc.stdout)
    expected = load_packed(path).classify(paths, topk=2)
    assert list(printed) == paths
    for image, predictions in zip(paths, expected):
        assert [(i, n) for _, i, n in printed[image]] == [
            (p.index, p.name) for p in predictions]

    ckpt = tmp_path / 'float.pth'
    torch.save({'state_dict': model.state_dict()}, ckpt)
    options = [f'{k}={v}' for k, v in NARROW.items()]
    proc = run_tool(['tools/deployment/classify.py', str(ckpt), *paths,
                     '--config', FMNIST_QUICK_CFG, '--cfg-options',
                     *options, '--topk', '3'])
    printed = _printed(proc.stdout)
    with torch.no_grad():
        ref = model(load_packed(path).preprocess(paths),
                    mode='tensor').softmax(1)
    for image, scores in zip(paths, ref):
        top = printed[image]
        assert [i for _, i, _ in top] == scores.topk(3).indices.tolist()
        assert [n for _, _, n in top] == [
            FASHIONMNIST_CATEGORITES[i] for _, i, _ in top]


@pytest.mark.slow
def test_classify_tool_bad_input_one_line(exported, images, tmp_path):
    model, path = exported
    float_ckpt = tmp_path / 'float.pth'
    torch.save({'state_dict': model.state_dict()}, float_ckpt)
    old = pack_classifier(model)
    old_path = str(tmp_path / 'old.bin.pth')
    torch.save(old, old_path)
    text = tmp_path / 'text.png'
    text.write_text('not an image')
    cases = [
        ([path, str(tmp_path / 'missing.png')], 'image file not found'),
        ([path, str(text)], 'cannot read'),
        ([old_path, images[0][0]], 'does not record the preprocessing'),
        ([str(float_ckpt), images[0][0]], 'a float checkpoint needs --config'),
        ([str(float_ckpt), images[0][0], '--config', FMNIST_QUICK_CFG,
          '--cfg-options', 'model.type=NoSuchClassifier'],
         "type 'NoSuchClassifier' in the config is not a registered "
         'mmpretrain model; closest registered:'),
        ([str(float_ckpt), images[0][0], '--config', FMNIST_QUICK_CFG,
          '--cfg-options', *[f'{k}={v}' for k, v in NARROW.items()],
          'test_dataloader.dataset.classes=[a,b]'],
         'names 2 classes but the model has 10 outputs'),
    ]
    for args, expected in cases:
        proc = run_tool(['tools/deployment/classify.py', *args],
                        check=False)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.strip().count('\n') == 0, proc.stderr
        assert expected in proc.stderr


def test_classify_takes_a_list_and_the_file_its_class_names(exported,
                                                            images):
    paths, gray = images
    packed = load_packed(exported[1], backend='torch')
    for one, what in ((paths[0], 'path'), (gray, 'array')):
        with pytest.raises(InputError,
                           match=f'got one {what}: wrap it in a list'):
            packed.classify(one)
    with pytest.raises(InputError, match='images is empty'):
        packed.classify([])
    # class names that do not match the classes: refused at load, not an
    # IndexError in classify()
    file = torch.load(exported[1], weights_only=True)
    file['meta']['classes'] = file['meta']['classes'][:3]
    with pytest.raises(CheckpointError,
                       match='10 classes, but meta classes holds 3 names'):
        PackedBiRealNet(file, backend='torch')
