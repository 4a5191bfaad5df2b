"""mmbireal.apis.build_model: the one way analysis, deployment and the
tools build a model from a config."""
import os.path as osp

import pytest
import torch
from helpers import REPO
from mmengine.config import Config

from mmbireal.apis import build_model
from mmbireal.utils import CheckpointError

CFG = osp.join(REPO, 'configs', 'birealnet', 'bireal18_1xb64_fmnist.py')
NARROW = {
    'model.backbone.stem_channels': 8,
    'model.backbone.base_channels': 8,
    'model.head.in_channels': 64,
}


def test_loads_the_checkpoint_in_eval_mode(tmp_path):
    torch.manual_seed(0)
    trained = build_model(CFG, cfg_options=NARROW).train()
    with torch.no_grad():
        for p in trained.parameters():
            p.add_(1.0)
    path = str(tmp_path / 'epoch_1.pth')
    torch.save({'state_dict': trained.state_dict()}, path)
    torch.manual_seed(1)
    model = build_model(CFG, path, NARROW, device='cpu')
    assert not any(m.training for m in model.modules())
    mine = model.state_dict()
    for key, value in trained.state_dict().items():
        assert torch.equal(mine[key], value), key


def test_a_checkpoint_of_another_width_is_refused(tmp_path):
    path = str(tmp_path / 'narrow.pth')
    torch.save({'state_dict': build_model(CFG, cfg_options=NARROW)
                .state_dict()}, path)
    with pytest.raises(CheckpointError, match=(
            r'^checkpoint .*narrow\.pth does not fit the model of the '
            r'config .*shape mismatches')):
        build_model(CFG, path)


def test_cfg_options_leave_the_callers_config_alone():
    cfg = Config.fromfile(CFG)
    model = build_model(cfg, cfg_options=NARROW)
    assert model.head.fc.in_features == 64
    assert cfg.model.head.in_channels == 512
    # the config's top-level normalisation is the model's, as in the Runner
    assert model.data_preprocessor.mean.flatten().tolist() == \
        pytest.approx(cfg.data_preprocessor.mean)


def test_a_package_config_builds_as_in_the_tools():
    # the tools take 'pkg::' paths; so does the API they share
    model = build_model('mmpretrain::resnet/resnet18_8xb32_in1k.py')
    assert type(model.backbone).__name__ == 'ResNet'
    assert model.head.fc.out_features == 1000
