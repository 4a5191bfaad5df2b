"""Packed files and the engine with tensors off the CPU, on a CPU-only
machine (tests/gpu_stand_in.py)."""
import pytest
import torch
from gpu_stand_in import GPU, OnGPU, gpu_factories, on_gpu
from helpers import small_fmnist_model

from mmbireal.deploy import PackedBiRealNet, pack_classifier
from mmbireal.deploy.unpack import float_state_dict
from mmbireal.utils import InputError
from mmbireal.utils.checkpoint import _unpacked


def test_the_stand_in_refuses_what_cuda_refuses():
    """Else the tests below could pass on code that mixes devices."""
    x = torch.ones(3).as_subclass(OnGPU)
    with pytest.raises(RuntimeError, match='same device'):
        x + torch.ones(3)
    with gpu_factories():
        assert type(x + torch.ones(3, device=x.device)) is OnGPU
        assert type(torch.arange(3).to(x.device)) is OnGPU
    assert type(x.to('cpu')) is torch.Tensor and x.to('cpu').sum() == 3


def test_a_packed_file_loaded_on_a_gpu_unpacks_where_it_is():
    """``map_location='cuda'`` (a resume maps to the run's device): the
    file reads as the float state dict it reads as on the CPU, and the
    packed model built from it refuses to run in one line."""
    packed = pack_classifier(small_fmnist_model())
    expected = float_state_dict(packed)
    with gpu_factories():
        state = _unpacked(on_gpu(packed), 'f.bin.pth')['state_dict']
        model = PackedBiRealNet(on_gpu(packed), backend='torch')
    assert state.keys() == expected.keys()
    for key, value in expected.items():
        got = state[key]
        if isinstance(value, torch.Tensor):
            assert torch.equal(got.cpu(), value), key
        else:
            assert got == value, key
    assert model.blocks[0].convs[0].bits.device == GPU
    with pytest.raises(InputError, match='runs on the CPU only'):
        model(torch.zeros(1, 1, 28, 28))


def test_the_engine_refuses_a_weight_off_the_cpu(native):
    """It would read the tensor's memory through a host pointer."""
    weight = torch.zeros(1, 9, 1, 8, dtype=torch.int64)
    native.plan_conv3x3(8, weight, 8, 1)  # the same weight on the CPU
    with pytest.raises(ValueError,
                       match=r'^weight must be int64 \(1, 9, 1, 8\) on the '
                       r'CPU, got torch.int64 \(1, 9, 1, 8\) on cuda:0$'):
        native.plan_conv3x3(8, weight.as_subclass(OnGPU), 8, 1)
