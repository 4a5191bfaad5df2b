"""export_binary.py --verify: passes an exact export, fails a wrong one."""
import pytest
import torch
from helpers import import_deployment_tool, tiny_random_checkpoint
from mmengine.config import Config
from mmpretrain import get_model

from mmbireal.deploy import export_packed
from mmbireal.deploy.file_format import conv_key


def _exported(tmp_path):
    """The tool, a small random model and its packed file."""
    config, checkpoint = tiny_random_checkpoint(tmp_path)
    cfg = Config.fromfile(config)
    model = get_model(cfg, pretrained=checkpoint).eval()
    out = str(tmp_path / 'packed.pth')
    export_packed(model, out, cfg)
    return import_deployment_tool('export_binary'), model, out


def test_verify_passes_the_export_and_fails_a_different_model(tmp_path):
    export_binary, model, out = _exported(tmp_path)
    message, ok = export_binary.verify(model, out)
    assert ok, message
    assert message.count('argmax agrees') == 2, message
    # a model whose logits are not the file's
    with torch.no_grad():
        model.head.fc.bias[0] += 100.0
    message, ok = export_binary.verify(model, out)
    assert not ok
    assert 'FAILED (layer head.fc off by' in message, message
    assert message.endswith('engine logits beyond 0.25 of the range of the '
                            'float64 ones)'), message


@pytest.mark.parametrize('change', ['scale', 'shift', 'sign', 'nan'])
def test_verify_fails_a_file_one_layer_of_which_is_slightly_off(
        tmp_path, change):
    """A file with one channel's scale halved or shift moved by a tenth
    of a unit, or one weight's sign flipped: the logits may move by less
    than a rounding-flipped sign moves them, the layers check does not."""
    export_binary, model, out = _exported(tmp_path)
    packed = torch.load(out, weights_only=True)
    weights = packed['weights']
    key = conv_key(1, 0, 0, {'sign': 'bits', 'nan': 'scale'}.get(change,
                                                                  change))
    if change == 'sign':  # one weight of output channel 0
        weights[key].view(-1)[0] ^= 1
    elif change == 'scale':
        weights[key][0] *= 0.5
    elif change == 'nan':  # reported as such, not passed over by max()
        weights[key][0] = float('nan')
    else:
        weights[key][0] += 0.1
    torch.save(packed, out)
    message, ok = export_binary.verify(model, out)
    assert not ok, message
    assert 'FAILED (layer backbone.layer2.0.' in message, message
    if change == 'nan':
        assert 'off by inf of its range' in message, message


def test_export_from_a_checkpoint_url_prints_no_local_size(
        tmp_path, monkeypatch, capsys):
    """build_model reads a URL (after a download); the tool then has no
    local file to give the size of, and says so by leaving that line out
    instead of failing after the file is written."""
    config, checkpoint = tiny_random_checkpoint(tmp_path)
    export_binary = import_deployment_tool('export_binary')
    url = 'https://example.com/bireal.pth'
    build = export_binary.build_model
    monkeypatch.setattr(
        export_binary, 'build_model',
        lambda cfg, ckpt: build(cfg, checkpoint if ckpt == url else ckpt))
    for source, name in ((url, 'url.bin.pth'), (checkpoint, 'file.bin.pth')):
        out = str(tmp_path / name)
        export_binary.main([config, source, out])
        printed = capsys.readouterr().out
        assert printed.startswith(f'wrote {out}\n  packed file'), printed
        assert ('checkpoint file' in printed) == (source == checkpoint)
