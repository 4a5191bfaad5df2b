"""Checkpoints are read in weights-only mode with an exact allow-list."""
import os.path as osp

import numpy as np
import pytest
import torch
from helpers import run_tool
from mmengine.logging import HistoryBuffer, MessageHub
from mmengine.runner import load_checkpoint

from mmbireal.models import BiRealNet
from mmbireal.utils import (
    CheckpointError,
    atomic_torch_save,
    check_checkpoint_fits,
    load_checkpoint_file,
)


class WritesAFile:
    """Unpickling this would create ``path`` (a stand-in for any payload)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, 'w'))


class ReachesThroughGetattr:
    """Abuses the getattr allowed for HistoryBuffer's statistics table."""

    def __reduce__(self):
        return (getattr, (HistoryBuffer, 'mro'))


def runner_like_checkpoint() -> dict:
    hub = MessageHub('test_checkpoint')
    for i in range(3):
        hub.update_scalar('train/loss', np.float64(1.0 / (i + 1)))
        hub.update_scalar('train/lr', 0.01)
    hub.update_info('iter', np.int64(3))
    return {
        'meta': {'epoch': 1, 'seed': np.int64(0)},
        'state_dict': BiRealNet(18).state_dict(),
        'message_hub': hub.state_dict(),
        'optimizer': {'state': {}, 'param_groups': [{'lr': 0.01}]},
    }


def test_runner_checkpoint_round_trip(tmp_path):
    path = str(tmp_path / 'ok.pth')
    saved = runner_like_checkpoint()
    torch.save(saved, path)
    loaded = load_checkpoint_file(path)
    for key, value in saved['state_dict'].items():
        assert torch.equal(loaded['state_dict'][key], value)
    buffer = loaded['message_hub']['log_scalars']['train/loss']
    assert isinstance(buffer, HistoryBuffer)
    assert buffer.mean() == pytest.approx((1 + 1 / 2 + 1 / 3) / 3)
    assert buffer.current() == pytest.approx(1 / 3)


def test_loading_leaves_the_host_allow_list_as_it_was(tmp_path):
    """Our allow-list is added for one load and then removed, except what
    the application had allowed itself."""
    path = str(tmp_path / 'ok.pth')
    torch.save(runner_like_checkpoint(), path)
    def allowed() -> set:  # torch keeps them in a set
        return set(torch.serialization.get_safe_globals())

    before = allowed()
    assert np.ndarray not in before
    try:
        torch.serialization.add_safe_globals([np.ndarray])
        load_checkpoint_file(path)
        assert allowed() == before | {np.ndarray}
    finally:
        torch.serialization.clear_safe_globals()
        torch.serialization.add_safe_globals(list(before))
    load_checkpoint_file(path)
    assert allowed() == before


@pytest.mark.parametrize('payload, named', [
    (lambda d: WritesAFile(osp.join(d, 'pwned')), 'open'),
    (lambda d: ReachesThroughGetattr(), 'getattr(HistoryBuffer.mro)'),
])
def test_foreign_pickle_is_refused_and_never_runs(tmp_path, payload, named):
    path = str(tmp_path / 'evil.pth')
    torch.save({'state_dict': {}, 'meta': payload(str(tmp_path))}, path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint_file(path)
    message = str(info.value)
    assert '\n' not in message
    assert message.startswith(f'refusing to load checkpoint {path}')
    assert named in message
    assert not osp.exists(tmp_path / 'pwned')


def test_mmengine_load_checkpoint_goes_through_our_loader(tmp_path):
    path = str(tmp_path / 'evil.pth')
    torch.save({'state_dict': WritesAFile(str(tmp_path / 'pwned'))}, path)
    with pytest.raises(CheckpointError):
        load_checkpoint(BiRealNet(18), path)
    assert not osp.exists(tmp_path / 'pwned')


def test_unreadable_files_get_one_line_errors(tmp_path):
    good = str(tmp_path / 'good.pth')
    torch.save(runner_like_checkpoint(), good)
    truncated = tmp_path / 'truncated.pth'
    truncated.write_bytes(open(good, 'rb').read()[:4096])
    text = tmp_path / 'notes.pth'
    text.write_text('not a checkpoint\n')
    for path in (truncated, text):
        with pytest.raises(CheckpointError) as info:
            load_checkpoint_file(str(path))
        assert str(info.value).startswith(
            f'cannot read checkpoint {path}: truncated or not a torch '
            'checkpoint')
        assert '\n' not in str(info.value)
    with pytest.raises(FileNotFoundError, match='does not exist'):
        load_checkpoint_file(str(tmp_path / 'missing.pth'))


@pytest.mark.slow
def test_tools_test_refuses_foreign_pickle(fmnist_available, tmp_path):
    path = str(tmp_path / 'evil.pth')
    torch.save({'state_dict': WritesAFile(str(tmp_path / 'pwned'))}, path)
    proc = run_tool([
        'tools/test.py', 'configs/birealnet/bireal18_1xb64_fmnist.py', path,
        '--work-dir', str(tmp_path / 'work')
    ], check=False)
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1] == (
        f'error: refusing to load checkpoint {path}: it holds io.open, '
        'which weights-only loading does not allow')
    assert 'Traceback' not in proc.stderr
    assert not osp.exists(tmp_path / 'pwned')


def _classifier(depth: int = 18, num_classes: int = 10, in_channels=1):
    from mmpretrain.models import ImageClassifier
    return ImageClassifier(
        backbone=dict(type='BiRealNet', depth=depth, base_channels=8,
                      stem_channels=8, in_channels=in_channels,
                      stem_type='small'),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=num_classes,
                  in_channels=64))


def _save_state(model, path, prefix=''):
    torch.save({'state_dict': {prefix + k: v
                               for k, v in model.state_dict().items()}},
               str(path))
    return str(path)


def test_checkpoint_fit_names_missing_unexpected_and_resized(tmp_path):
    model = _classifier()
    check_checkpoint_fits(model, _save_state(model, tmp_path / 'same.pth'))
    # DataParallel's prefix is removed, as mmengine does
    check_checkpoint_fits(
        model, _save_state(model, tmp_path / 'dp.pth', prefix='module.'))

    deeper = _save_state(_classifier(depth=34), tmp_path / 'deeper.pth')
    with pytest.raises(CheckpointError) as info:
        check_checkpoint_fits(model, deeper)
    assert str(info.value) == (
        f'checkpoint {deeper} does not fit the model of the config (another '
        'depth or architecture?): 96 unexpected keys (backbone.layer1.4.conv.'
        'weight, backbone.layer1.4.bn.weight, ...)')

    rgb = _save_state(_classifier(in_channels=3), tmp_path / 'rgb.pth')
    with pytest.raises(CheckpointError, match=r'1 shape mismatches \('
                       r'backbone.conv1.weight: checkpoint \(8, 3, 3, 3\), '
                       r'model \(8, 1, 3, 3\)\)'):
        check_checkpoint_fits(model, rgb)

    shallower = _save_state(model, tmp_path / 'shallower.pth')
    with pytest.raises(CheckpointError, match='96 missing keys'):
        check_checkpoint_fits(_classifier(depth=34), shallower)


def test_checkpoint_fit_may_ignore_a_new_head(tmp_path):
    other_head = _save_state(_classifier(num_classes=5), tmp_path / 'h.pth')
    model = _classifier()
    with pytest.raises(CheckpointError, match=r'head\.fc\.weight'):
        check_checkpoint_fits(model, other_head)
    check_checkpoint_fits(model, other_head, prefixes=('backbone.', ))


@pytest.mark.slow
@pytest.mark.parametrize('tool', ['test', 'train'])
def test_tools_refuse_a_checkpoint_of_another_depth(fmnist_available,
                                                    tmp_path, tool):
    path = _save_state(_classifier(depth=34), tmp_path / 'deeper.pth')
    config = 'configs/birealnet/bireal18_1xb64_fmnist.py'
    small = ['model.backbone.stem_channels=8',
             'model.backbone.base_channels=8', 'model.head.in_channels=64']
    args = ([f'tools/{tool}.py', config, path] if tool == 'test' else
            [f'tools/{tool}.py', config])
    args += ['--work-dir', str(tmp_path / 'work'), '--cfg-options', *small]
    if tool == 'train':
        args.append(f'load_from={path}')
    proc = run_tool(args, check=False)
    assert proc.returncode == 2
    assert 'Traceback' not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(
        f'error: checkpoint {path} does not fit the model of the config '
        '(another depth or architecture?): 96 unexpected keys')


def test_atomic_save_writes_whole_files_or_nothing(tmp_path, monkeypatch):
    """The one save of the converters, publish_model and export_packed: a
    failed write (a full disk here) leaves no temporary file and ends in
    one line; ``rename`` names the file from what was written."""
    path = str(tmp_path / 'sub' / 'model.pth')
    assert atomic_torch_save({'w': torch.ones(2)}, path) == path
    assert load_checkpoint_file(path)['w'].tolist() == [1.0, 1.0]
    named = atomic_torch_save({}, path, lambda tmp: tmp + '.named')
    assert osp.isfile(named) and named.startswith(path + '.tmp')

    with pytest.raises(Exception, match='pickle'):  # not a disk error
        atomic_torch_save({'f': lambda: 0}, str(tmp_path / 'bad.pth'))
    assert sorted(p.name for p in tmp_path.iterdir()) == ['sub']

    def disk_full(obj, f):
        f.write(b'half a checkpoint')
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(torch, 'save', disk_full)
    with pytest.raises(CheckpointError) as info:
        atomic_torch_save({}, str(tmp_path / 'full.pth'))
    assert str(info.value) == (
        f'cannot write {tmp_path}/full.pth: No space left on device')
    assert sorted(p.name for p in tmp_path.iterdir()) == ['sub']


@pytest.fixture
def web_folder(tmp_path):
    """A folder served over http on localhost: ``(folder, base URL)``."""
    import functools
    import http.server
    import threading

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    folder = tmp_path / 'www'
    folder.mkdir()
    server = http.server.ThreadingHTTPServer(
        ('127.0.0.1', 0), functools.partial(Quiet, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield folder, f'http://127.0.0.1:{server.server_address[1]}'
    server.shutdown()


def test_checkpoints_at_urls_load_weights_only(tmp_path, web_folder,
                                               monkeypatch):
    """mmengine reads URLs through torch.hub, which unpickles in full; ours
    downloads into the hub cache and reads the file as a local one."""
    folder, url = web_folder
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))
    saved = runner_like_checkpoint()
    torch.save(saved, folder / 'ok.pth')
    model = BiRealNet(18)
    load_checkpoint(model, f'{url}/ok.pth', map_location='cpu')
    for key, value in saved['state_dict'].items():
        assert torch.equal(model.state_dict()[key], value)
    assert osp.isfile(tmp_path / 'torch' / 'hub' / 'checkpoints' / 'ok.pth')

    pwned = tmp_path / 'pwned'
    torch.save({'state_dict': {}, 'x': WritesAFile(str(pwned))},
               folder / 'evil.pth')
    with pytest.raises(CheckpointError, match=r'refusing to load checkpoint '
                       r'\S+evil\.pth: it holds \S*open'):
        load_checkpoint(model, f'{url}/evil.pth', map_location='cpu')
    assert not pwned.exists()
    with pytest.raises(CheckpointError, match=r'^cannot download checkpoint '
                       r'\S+/missing\.pth: HTTP Error 404'):
        load_checkpoint(model, f'{url}/missing.pth', map_location='cpu')


@pytest.mark.parametrize('scheme,table', [
    ('torchvision://', 'get_torchvision_models'),
    ('open-mmlab://', 'get_external_models'),
    ('mmcls://', 'get_mmcls_models'),
])
def test_named_checkpoint_schemes_load_weights_only(
        tmp_path, web_folder, monkeypatch, scheme, table):
    """mmengine resolves these names to URLs and reads them through its
    module-level load_from_http, which ours replaces."""
    from mmengine.runner import checkpoint as mmengine_checkpoint
    folder, url = web_folder
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))
    pwned = tmp_path / 'pwned'
    torch.save({'state_dict': {}, 'x': WritesAFile(str(pwned))},
               folder / 'evil.pth')
    monkeypatch.setattr(mmengine_checkpoint, table,
                        lambda: {'evil': f'{url}/evil.pth'})
    with pytest.raises(CheckpointError, match=r'refusing to load checkpoint '
                       r'\S+evil\.pth: it holds \S*open'):
        load_checkpoint(BiRealNet(18), f'{scheme}evil', map_location='cpu')
    assert not pwned.exists()


def test_the_tools_check_a_checkpoint_at_a_url_before_the_run(
        tmp_path, web_folder, monkeypatch):
    """``load_from = 'https://...'`` (as MMPretrain's configs have) and
    ``tools/test.py CONFIG URL``: the start checkpoint's check reads URLs
    too (it said 'does not exist'), weights-only."""
    from helpers import tiny_random_checkpoint

    from mmbireal.utils import load_state_dict_file
    from mmbireal.utils.config import read_config
    from mmbireal.utils.launch import check_start_checkpoint
    folder, url = web_folder
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))
    config, checkpoint = tiny_random_checkpoint(tmp_path)
    (folder / 'tiny.pth').write_bytes(open(checkpoint, 'rb').read())
    state = load_state_dict_file(f'{url}/tiny.pth')
    assert torch.equal(state['head.fc.weight'], torch.load(
        checkpoint, weights_only=True)['state_dict']['head.fc.weight'])
    cfg = read_config(config)
    cfg.load_from = f'{url}/tiny.pth'
    check_start_checkpoint(cfg, head_may_differ=False)  # fits: no error
    cfg.load_from = f'{url}/missing.pth'
    with pytest.raises(CheckpointError, match=r'^cannot download '):
        check_start_checkpoint(cfg, head_may_differ=False)


@pytest.mark.slow
def test_tools_test_takes_a_checkpoint_url(fmnist_available, tmp_path,
                                           web_folder, monkeypatch):
    from helpers import tiny_random_checkpoint
    folder, url = web_folder
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))
    config, checkpoint = tiny_random_checkpoint(tmp_path)
    (folder / 'tiny.pth').write_bytes(open(checkpoint, 'rb').read())
    proc = run_tool(['tools/test.py', config, f'{url}/tiny.pth',
                     '--work-dir', str(tmp_path / 'work'), '--cfg-options',
                     'test_dataloader.dataset.indices=32',
                     'test_dataloader.num_workers=0'])
    assert 'accuracy/top1: ' in proc.stdout


def test_a_folder_given_as_a_checkpoint_is_named_as_one(tmp_path):
    with pytest.raises(CheckpointError, match=r'is a folder: give a '
                       r'checkpoint file in it$'):
        load_checkpoint_file(str(tmp_path))
    torch.save({}, tmp_path / 'epoch_1.pth')
    with pytest.raises(CheckpointError, match=r'is a folder: give a '
                       r'checkpoint file in it, e\.g\. \S+epoch_1\.pth$'):
        load_checkpoint_file(str(tmp_path))
