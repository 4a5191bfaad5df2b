"""Checkpoints are read in weights-only mode with an exact allow-list."""
import os.path as osp

import numpy as np
import pytest
import torch
from helpers import run_tool
from mmengine.logging import HistoryBuffer, MessageHub
from mmengine.runner import load_checkpoint

from mmbireal.models import BiRealNet
from mmbireal.utils import CheckpointError, load_checkpoint_file


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
