"""Packed inference with the backbone's 'tf_same' padding (larq-zoo's):
the engine against the reference path bit for bit, the reference against
the training layer, and the converted larq-zoo fixture exported and run."""
import importlib.util
import itertools
import os.path as osp

import pytest
import torch
import torch.nn.functional as F
from helpers import REPO

from mmbireal.deploy import (
    PackedBiRealNet,
    affine_epilogue,
    binary_conv3x3_torch,
    engine_weight_layout,
    get_engine,
    load_packed,
    pack_classifier,
    pack_signs_torch,
    unpack_signs,
)
from mmbireal.deploy.export import export_packed
from mmbireal.models import BinaryConv2d, BiRealNet
from mmbireal.models.padding import tf_same_pads
from mmbireal.utils.errors import InputError

# (n, h, w, c, cout, stride): even and odd sizes, one and several words
CASES = [(1, 8, 8, 64, 64, 2), (2, 7, 8, 65, 8, 2), (1, 6, 9, 3, 130, 2),
         (2, 5, 6, 100, 65, 1), (1, 2, 2, 64, 16, 2), (1, 1, 3, 70, 8, 2)]


def _case(n, h, w, c, cout, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, h, w, c, generator=gen)
    x[..., ::7] = 0.0  # sign(0) = +1
    weight = torch.randn(cout, c, 3, 3, generator=gen)
    bits = pack_signs_torch(weight.permute(0, 2, 3, 1))
    w_pm1 = unpack_signs(bits, c).permute(0, 3, 1, 2).contiguous()
    return x, bits, w_pm1, gen


@pytest.mark.parametrize('n,h,w,c,cout,stride', CASES)
def test_reference_is_the_training_layer(n, h, w, c, cout, stride):
    x, _, w_pm1, _ = _case(n, h, w, c, cout)
    dots = binary_conv3x3_torch(x, w_pm1, stride, 'tf_same')
    conv = BinaryConv2d(c, cout, 3, stride, padding='tf_same', bias=False,
                        weight_binarizer='sign')
    with torch.no_grad():
        conv.weight.copy_(w_pm1)
        layer = conv(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
    assert torch.equal(dots, layer)
    # zeros before: the TF pads, not PyTorch's padding 1
    left, right = tf_same_pads(w, 3, stride)
    top, bottom = tf_same_pads(h, 3, stride)
    signs = torch.where(x >= 0, 1.0, -1.0).permute(0, 3, 1, 2)
    direct = F.conv2d(F.pad(signs, (left, right, top, bottom)), w_pm1,
                      stride=stride)
    assert torch.equal(dots, direct.permute(0, 2, 3, 1))


@pytest.mark.parametrize('n,h,w,c,cout,stride', CASES)
def test_engine_bit_exact(native, n, h, w, c, cout, stride):
    x, bits, w_pm1, gen = _case(n, h, w, c, cout)
    ref_dots = binary_conv3x3_torch(x, w_pm1, stride, 'tf_same')
    scale = torch.randn(cout, generator=gen)
    shift = torch.randn(cout, generator=gen)
    residual = torch.randn(*ref_dots.shape, generator=gen)
    ref_out = affine_epilogue(ref_dots, scale, shift, residual)
    act = native.pack_signs(x)
    for simd in native.supported_simd():
        res = native.conv3x3(act, c, engine_weight_layout(bits), cout,
                             stride, scale, shift, residual, want_dot=True,
                             want_bits=True, simd=simd, padding='tf_same')
        assert torch.equal(res.dot, ref_dots.to(torch.int32)), simd
        assert torch.equal(res.out, ref_out), simd
        assert torch.equal(res.bits, pack_signs_torch(ref_out)), simd
    if stride == 2 and h % 2 == 0:  # the symmetric padding differs here
        sym = native.conv3x3(act, c, engine_weight_layout(bits), cout,
                             stride, want_dot=True, want_out=False)
        assert not torch.equal(sym.dot, ref_dots.to(torch.int32))


def _converted_fixture():
    spec = importlib.util.spec_from_file_location(
        'larq_zoo_compare',
        osp.join(REPO, 'tools', 'model_converters', 'larq_zoo_compare.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build_converted(
        osp.join(REPO, 'tests', 'fixtures', 'larq_zoo', 'birealnet_random.h5'))


def test_converted_larq_zoo_model_exports_and_runs(tmp_path):
    model = _converted_fixture()
    path = str(tmp_path / 'larq.pth')
    export_packed(model, path)
    packed_dict = torch.load(path, weights_only=True)
    assert packed_dict['version'] == 2
    assert packed_dict['arch']['padding'] == 'tf_same'
    gen = torch.Generator().manual_seed(0)
    outs = {}
    for size in (64, 57):  # even and odd maps at every stage
        x = torch.randn(3, 3, size, size, generator=gen)
        with torch.no_grad():
            ref = model(x, mode='tensor')
        for backend in ('native', 'torch'):
            if backend == 'native' and get_engine() is None:
                continue
            packed = load_packed(path, backend=backend)
            out = packed(x)
            span = (ref.max() - ref.min()).item()
            assert (out - ref).abs().max().item() <= 1e-4 * span
            assert torch.equal(out.argmax(1), ref.argmax(1))
            outs[backend, size] = out
        if ('native', size) in outs:  # identical floats on both backends
            assert torch.equal(outs['native', size], outs['torch', size])
    with pytest.raises(InputError, match="symmetric padding only"):
        load_packed(path, backend='torch', stem='int8')


def test_network_call_is_bit_exact_at_every_simd_level(native):
    packed = PackedBiRealNet(
        pack_classifier(_tiny_classifier(padding='tf_same')))
    gen = torch.Generator().manual_seed(3)
    threads = torch.get_num_threads()
    try:
        for h, w in ((16, 16), (13, 10)):
            feat = torch.randn(2, h, w, 8, generator=gen)
            ref = feat
            for block in packed.blocks:
                ref = block.forward_torch(ref)
            blocks = [block.spec() for block in packed.blocks]
            for simd, n in itertools.product(native.supported_simd(),
                                             (1, 3)):
                torch.set_num_threads(n)
                plan = native.plan_network(blocks, simd, padding='tf_same')
                assert torch.equal(plan(feat), ref), (h, w, simd, n)
    finally:
        torch.set_num_threads(threads)


def test_symmetric_export_is_version_1_without_padding_key():
    packed = pack_classifier(_tiny_classifier(padding='symmetric'))
    assert packed['version'] == 1 and 'padding' not in packed['arch']


def _tiny_classifier(padding):
    from helpers import randomize_bn
    from mmpretrain.models import ImageClassifier
    model = ImageClassifier(
        backbone=dict(type='BiRealNet', depth=18, stem_channels=8,
                      base_channels=8, padding=padding),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=5, in_channels=64))
    assert isinstance(model.backbone, BiRealNet)
    randomize_bn(model)
    return model.eval()


def test_roofline_times_the_stem_the_model_runs(native):
    # the roofline's stem conv is the model's, padded as the model pads
    from helpers import import_deployment_tool
    bench = import_deployment_tool('benchmark_binary')
    model = _tiny_classifier(padding='tf_same')
    packed = PackedBiRealNet(pack_classifier(model))
    x = torch.randn(2, 3, 33, 34, generator=torch.Generator().manual_seed(0))
    stem = bench.packed_layers(packed, x)[0]
    assert stem.name == 'stem 7x7 conv -> 17x17x8'
    with torch.no_grad():
        expected = model.backbone.bn1(model.backbone.conv1(x))
    torch.testing.assert_close(stem.run(), expected, rtol=1e-4, atol=1e-4)
