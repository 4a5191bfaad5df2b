"""export_binary.py --verify: passes an exact export, fails a wrong one."""
import torch
from helpers import import_deployment_tool, tiny_random_checkpoint
from mmengine.config import Config
from mmpretrain import get_model

from mmbireal.deploy import export_packed


def test_verify_passes_the_export_and_fails_a_different_model(tmp_path):
    export_binary = import_deployment_tool('export_binary')
    config, checkpoint = tiny_random_checkpoint(tmp_path)
    cfg = Config.fromfile(config)
    model = get_model(cfg, pretrained=checkpoint).eval()
    out = str(tmp_path / 'packed.pth')
    export_packed(model, out, cfg)
    message, ok = export_binary.verify(model, out)
    assert ok, message
    assert message.count('argmax agrees') == 2, message
    # a model whose logits are not the file's
    with torch.no_grad():
        model.head.fc.bias[0] += 100.0
    message, ok = export_binary.verify(model, out)
    assert not ok
    assert message.endswith('FAILED (tolerance 0.25 against float64)')
