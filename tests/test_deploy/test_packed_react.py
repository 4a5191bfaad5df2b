"""ReActNet's parts in the packed format and the engine: RSign biases as
sign thresholds, RPReLU in the epilogue, bit-exact against the reference
path, and files without the parts unchanged."""
import itertools

import pytest
import torch
from helpers import small_fmnist_model, small_react_model

from mmbireal.deploy import (
    ExportError,
    PackedBiRealNet,
    export_packed,
    get_engine,
    load_packed,
    pack_classifier,
)


def _assert_logits_match(ref, out):
    span = (ref.max() - ref.min()).item()
    assert (out - ref).abs().max().item() <= 1e-3 * span
    assert torch.equal(out.argmax(1), ref.argmax(1))


def test_file_without_the_parts_is_unchanged():
    packed = pack_classifier(small_fmnist_model())
    assert packed['version'] == 1
    assert 'sign_bias' not in packed['arch']
    assert 'block_act' not in packed['arch']
    assert not [k for k in packed['weights']
                if 'sign_bias' in k or 'block_act' in k]


@pytest.mark.parametrize('cps', (1, 2))
def test_export_matches_float_model_on_both_backends(tmp_path, cps):
    model = small_react_model(cps)
    path = str(tmp_path / 'react.pth')
    export_packed(model, path)
    packed = load_packed(path, backend='torch')
    assert packed.arch['sign_bias'] is True
    assert packed.arch['block_act'] == 'rprelu'
    x = torch.randn(3, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = model(x, mode='tensor')
    out = packed(x)
    _assert_logits_match(ref, out)
    # without the parts the packed network would differ: they are used
    plain = pack_classifier(model)
    plain['arch'].pop('sign_bias')
    plain['arch'].pop('block_act')
    assert not torch.allclose(PackedBiRealNet(plain, backend='torch')(x), out)
    if get_engine() is not None:
        assert torch.equal(load_packed(path, backend='native')(x), out)


def test_parts_with_tf_same_padding(tmp_path):
    """Both version-2 features in one file: the thresholds and RPReLU with
    TensorFlow's asymmetric padding, on both backends."""
    model = small_react_model(1, **{'model.backbone.padding': 'tf_same'})
    path = str(tmp_path / 'react_tf_same.pth')
    export_packed(model, path)
    packed = load_packed(path, backend='torch')
    assert packed.arch['padding'] == 'tf_same'
    assert packed.arch['sign_bias'] is True
    # 27 px: the stride-2 convs pad at odd and even sizes
    x = torch.randn(3, 1, 27, 27, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref = model(x, mode='tensor')
    out = packed(x)
    _assert_logits_match(ref, out)
    if get_engine() is not None:
        assert torch.equal(load_packed(path, backend='native')(x), out)


def test_file_with_the_parts_is_version_2_and_names_them():
    model = small_react_model()
    packed = pack_classifier(model)
    assert packed['version'] == 2
    weights = packed['weights']
    block = model.backbone.layer2[0]
    assert torch.equal(weights['layer2.0.conv0.sign_bias'], block.act.bias)
    assert weights['layer2.0.conv0.sign_bias'].shape == (16, )  # C_in
    act = block.block_act
    assert torch.equal(weights['layer2.0.block_act.shift_in'],
                       act.shift_in.bias)
    assert torch.equal(weights['layer2.0.block_act.slope'], act.prelu.weight)
    assert torch.equal(weights['layer2.0.block_act.shift_out'],
                       act.shift_out.bias)


def test_network_call_is_bit_exact_at_every_simd_level(native):
    """Inputs exactly at a threshold (x = -b: x + b rounds to 0, bit 1) and
    one float either side of it (bits 0 and 1), for large and tiny biases,
    pack alike on both paths, inside the engine and at its first packing;
    every SIMD level and thread count."""
    for cps in (1, 2):
        packed = PackedBiRealNet(pack_classifier(small_react_model(cps)))
        gen = torch.Generator().manual_seed(3)
        feat = torch.randn(2, 13, 11, 16, generator=gen)
        bias = packed.blocks[0].convs[0].sign_bias
        bias[:4] = torch.tensor([1e4, -1e4, 3e-8, -3e-8])  # large and tiny
        feat[0, 0, :, :] = -bias
        feat[0, 1, :, :] = torch.nextafter(-bias, torch.tensor(-1e9))
        feat[0, 2, :, :] = torch.nextafter(-bias, torch.tensor(1e9))
        ref = feat
        for block in packed.blocks:
            ref = block.forward_torch(ref)
        blocks = [block.spec() for block in packed.blocks]
        threads = torch.get_num_threads()
        try:
            for simd, n in itertools.product(native.supported_simd(),
                                             (1, 3)):
                torch.set_num_threads(n)
                out = native.plan_network(blocks, simd)(feat)
                assert torch.equal(out, ref), (cps, simd, n)
        finally:
            torch.set_num_threads(threads)


def test_parts_on_some_blocks_only_or_other_acts_are_refused():
    model = small_react_model()
    del model.backbone.layer3[1].block_act
    with pytest.raises(ExportError, match='RPReLUs on some'):
        pack_classifier(model)
    model = small_react_model()
    model.backbone.layer1[0].block_act = torch.nn.ReLU()
    with pytest.raises(ExportError, match='a ReLU after the residual add'):
        pack_classifier(model)
    model = small_react_model()
    model.backbone.layer1[0].act = torch.nn.Identity()
    with pytest.raises(ExportError, match='RSign biases on some'):
        pack_classifier(model)
