"""The packed model's caches and plans follow its buffers: in-place loads,
moved storage, copies and pickles give what a freshly built model gives;
files and plans the engine cannot run safely are refused."""
import copy
import pickle

import pytest
import torch
from helpers import small_fmnist_model, small_react_model

from mmbireal.deploy import PackedBiRealNet, pack_classifier, pack_signs_torch
from mmbireal.deploy.file_format import conv_key
from mmbireal.models.binarizers import sign_nonzero
from mmbireal.utils import CheckpointError

BACKENDS = ('native', 'torch')


def _input() -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    return torch.randn(2, 1, 28, 28, generator=gen)


def _other_network() -> dict:
    """A network of the same shape with other weights, biases and bits."""
    model = small_react_model()
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * p.abs().mean())
    return pack_classifier(model)


@pytest.mark.parametrize('backend', BACKENDS)
def test_load_state_dict_in_place_is_seen(native, backend):
    """Every buffer, RSign biases and weight bits included, after the
    model has run once (its caches and plan exist)."""
    model = PackedBiRealNet(pack_classifier(small_react_model()),
                            backend=backend)
    other = PackedBiRealNet(_other_network(), backend=backend)
    x = _input()
    before = model(x)
    model.load_state_dict(other.state_dict())
    assert not torch.equal(model(x), before)
    assert torch.equal(model(x), other(x))


def test_the_int8_stem_follows_its_weights():
    """load_state_dict writes stem_weight and stem_bias in place: the int8
    stem (oneDNN's prepacked copy of them) must be built again; a copy
    builds its own."""
    if getattr(torch.ops.onednn, 'qconv2d_pointwise', None) is None:
        pytest.skip('no oneDNN quantized conv in this PyTorch')
    model = PackedBiRealNet(pack_classifier(small_react_model()),
                            backend='torch', stem='int8')
    other = PackedBiRealNet(_other_network(), backend='torch', stem='int8')
    x = _input()
    before = model(x)
    model.load_state_dict(other.state_dict())
    assert not torch.equal(model(x), before)
    assert torch.equal(model(x), other(x))
    assert torch.equal(copy.deepcopy(model)(x), other(x))


def test_moved_storage_is_seen(native):
    """share_memory() moves every buffer: the plan must not keep reading
    the freed memory."""
    model = PackedBiRealNet(pack_classifier(small_react_model()),
                            backend='native')
    x = _input()
    before = model(x)
    model.share_memory()
    assert torch.equal(model(x), before)


@pytest.mark.parametrize('backend', BACKENDS)
def test_copies_and_pickles_run_on_their_backend(native, backend):
    model = PackedBiRealNet(pack_classifier(small_react_model()),
                            backend=backend)
    x = _input()
    out = model(x)
    for twin in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        assert twin.backend == backend
        assert torch.equal(twin(x), out)


def test_models_built_from_one_dict_do_not_share_buffers():
    packed = pack_classifier(small_fmnist_model())
    a = PackedBiRealNet(packed, backend='torch')
    b = PackedBiRealNet(packed, backend='torch')
    x = _input()
    out = b(x)
    with torch.no_grad():
        a.fc_bias.add_(1.0)
    assert torch.equal(b(x), out)


def test_bits_past_the_input_channels_are_refused():
    """The engine counts every bit of a word, the reference only the
    channels: such a file would give two different answers."""
    packed = pack_classifier(small_fmnist_model())
    bits = packed['weights'][conv_key(0, 0, 0, 'bits')]
    bits[0, 0, 0, 0] |= 1 << 62  # 16 input channels: bit 62 is padding
    with pytest.raises(CheckpointError,
                       match='bits set past the 16 input channels'):
        PackedBiRealNet(packed)


def test_the_engine_refuses_blocks_that_do_not_chain(native):
    model = PackedBiRealNet(pack_classifier(small_fmnist_model()),
                            backend='native')
    specs = [block.spec() for block in model.blocks]
    first_of_stage2 = next(i for i, s in enumerate(specs) if s.stride == 2)
    with pytest.raises(ValueError, match='block 1 takes 32 channels, the '
                       'block before gives 16'):
        native.plan_network([specs[0], specs[first_of_stage2 + 1]])
    with pytest.raises(ValueError, match='needs a downsample shortcut'):
        native.plan_network(
            [specs[first_of_stage2]._replace(downsample=None)])


def test_nan_is_signed_as_training_signs_it(native):
    x = torch.tensor([[float('nan'), -1.0, 0.0, -0.0, 2.0, -float('nan')]])
    training = pack_signs_torch(sign_nonzero(x))  # +1 for NaN
    assert sign_nonzero(x)[0, 0] == 1.0
    assert torch.equal(pack_signs_torch(x), training)
    assert torch.equal(native.pack_signs(x), training)
