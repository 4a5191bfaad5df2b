"""The backbone's padding modes: 'symmetric' (PyTorch's) and 'tf_same'."""
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from helpers import randomize_bn

import mmbireal  # noqa: F401 (registers BiRealNet, BinaryConv2d, ...)
import mmbireal.models.padding as padding_mod
from mmbireal.analysis import analyze_complexity
from mmbireal.models import BinaryConv2d, BiRealNet
from mmbireal.models.padding import (
    InputPadConv2d,
    InputPadMaxPool2d,
    input_pads,
    tf_same_pads,
)
from mmbireal.utils.errors import InputError


def _sign(x):
    return torch.where(x >= 0, 1.0, -1.0)


@pytest.mark.parametrize('size,kernel,stride,expected', [
    (224, 7, 2, (2, 3)),  # the stem at 224 px (the figures)
    (112, 3, 2, (0, 1)),  # the max-pool
    (56, 3, 2, (0, 1)),  # a stride-2 binary conv
    (56, 3, 1, (1, 1)),
    (7, 3, 2, (1, 1)),  # odd sizes pad alike on both sides
    (225, 7, 2, (3, 3)),
    (1, 3, 2, (1, 1)),
    (2, 2, 2, (0, 0)),
])
def test_tf_same_pads_known_values(size, kernel, stride, expected):
    assert tf_same_pads(size, kernel, stride) == expected


@pytest.mark.parametrize('kernel', [1, 2, 3, 5, 7])
@pytest.mark.parametrize('stride', [1, 2, 3])
def test_tf_same_pads_definition(kernel, stride):
    # TensorFlow's SAME: ceil(size / stride) outputs, the smallest total
    # padding that gives them, the odd one after
    for size in range(1, 40):
        before, after = tf_same_pads(size, kernel, stride)
        out = math.ceil(size / stride)
        padded = before + size + after
        assert (padded - kernel) // stride + 1 == out
        assert padded == max((out - 1) * stride + kernel, size)
        assert after - before in (0, 1)


@pytest.mark.parametrize('kernel,stride,dilation', [
    ((1, 3), 1, 1), ((3, 1), (2, 1), 1), (3, 2, 2), ((3, 5), (1, 2), (2, 1)),
])
@pytest.mark.parametrize('size', [(9, 10), (8, 7)])
def test_tf_same_is_per_dimension_and_counts_dilation(kernel, stride,
                                                      dilation, size):
    # TensorFlow's SAME in each dim on its own, over the dilated window
    torch.manual_seed(0)
    x = torch.randn(1, 4, *size)
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    dh, dw = (dilation, dilation) if isinstance(dilation, int) else dilation
    top, bottom = tf_same_pads(size[0], dh * (kh - 1) + 1, sh)
    left, right = tf_same_pads(size[1], dw * (kw - 1) + 1, sw)
    out_size = (math.ceil(size[0] / sh), math.ceil(size[1] / sw))
    real = InputPadConv2d(4, 6, kernel, stride=stride, dilation=dilation)
    binary = BinaryConv2d(4, 6, kernel, stride=stride, dilation=dilation,
                          padding='tf_same', weight_binarizer='sign',
                          bias=False)
    for conv, inputs, weight in (
            (real, x, real.weight),
            (binary, _sign(x), _sign(binary.weight))):
        with torch.no_grad():
            out = conv(x)
            expected = F.conv2d(
                F.pad(inputs, (left, right, top, bottom)), weight,
                conv.bias, conv.stride, 0, conv.dilation)
        assert tuple(out.shape[-2:]) == out_size
        torch.testing.assert_close(out, expected)


def test_symmetric_pads_none_and_bad_mode_refused():
    assert input_pads('symmetric', 8, 8, 3, 2) is None
    assert input_pads('tf_same', 8, 7, 3, 2) == (1, 1, 0, 1)
    for bad in ('same', 'SAME', None, ['tf_same']):
        with pytest.raises(InputError, match=r"accepted: \('symmetric', "
                           r"'tf_same'\)"):
            BiRealNet(18, padding=bad)


def test_default_is_the_symmetric_network():
    torch.manual_seed(0)
    default = BiRealNet(18)
    symmetric = BiRealNet(18, padding='symmetric')
    symmetric.load_state_dict(default.state_dict())
    assert type(default.conv1) is nn.Conv2d
    assert default.conv1.padding == (3, 3)
    assert type(default.maxpool) is nn.MaxPool2d
    for m in default.modules():
        if isinstance(m, BinaryConv2d):
            assert m.padding == (1, 1) and m.input_padding == 'symmetric'
    x = torch.randn(1, 3, 64, 64)
    assert torch.equal(default.eval()(x)[0], symmetric.eval()(x)[0])


def test_tf_same_stem_by_hand():
    torch.manual_seed(0)
    model = BiRealNet(18, padding='tf_same', out_indices=(0, )).eval()
    randomize_bn(model)
    x = torch.randn(2, 3, 64, 64)
    conv = F.conv2d(F.pad(x, (2, 3, 2, 3)), model.conv1.weight, stride=2)
    assert torch.allclose(model.conv1(x), conv, atol=1e-5)
    # the pool pads with -inf: an all-negative map never yields a 0
    y = -1 - torch.rand(1, 4, 32, 32)
    pooled = model.maxpool(y)
    assert pooled.shape == (1, 4, 16, 16) and (pooled < -1).all()
    ref = F.max_pool2d(F.pad(y, (0, 1, 0, 1), value=-math.inf), 3, 2)
    assert torch.equal(pooled, ref)
    # stem (the pool's input has an even size: 0 before, 1 after)
    stem = model.maxpool(model.bn1(model.conv1(x)))
    ref = F.max_pool2d(
        F.pad(model.bn1(conv), (0, 1, 0, 1), value=-math.inf), 3, 2)
    assert torch.allclose(stem, ref, atol=1e-5)


@pytest.mark.parametrize('stride,h,w', [(2, 8, 8), (2, 7, 8), (1, 6, 5)])
def test_tf_same_binary_conv_pads_the_binarized_input(stride, h, w):
    torch.manual_seed(0)
    conv = BinaryConv2d(4, 5, 3, stride, padding='tf_same', bias=False)
    x = torch.randn(2, 4, h, w, requires_grad=True)
    out = conv(x)
    g = torch.randn_like(out)
    out.backward(g)
    grad_x, grad_w = x.grad.clone(), conv.weight.grad.clone()
    x.grad = conv.weight.grad = None
    left, right = tf_same_pads(w, 3, stride)
    top, bottom = tf_same_pads(h, 3, stride)
    # the reference: binarize (with the surrogate gradients), pad with 0
    x_b = conv.act_binarizer_obj(x, 'torch')
    w_b = conv.weight_binarizer_obj(conv.weight, 'torch')
    ref = F.conv2d(F.pad(x_b, (left, right, top, bottom)), w_b, None, stride)
    assert out.shape == ref.shape == (2, 5, -(-h // stride), -(-w // stride))
    assert torch.allclose(out, ref, atol=1e-5)
    ref.backward(g)
    assert torch.allclose(grad_x, x.grad, atol=1e-5)
    assert torch.allclose(grad_w, conv.weight.grad, atol=1e-5)
    # padded taps add 0 (not -1 or +1): a corner sees 4 taps of sign(x)
    with torch.no_grad():
        alpha = conv.weight.abs().mean(dim=(1, 2, 3))
        manual = F.conv2d(
            F.pad(_sign(x), (left, right, top, bottom)),
            _sign(conv.weight) * alpha.view(-1, 1, 1, 1), None, stride)
        assert torch.allclose(conv(x), manual, atol=1e-5)


def test_tf_same_real_network_shares_the_state_dict():
    binary = BiRealNet(18, padding='tf_same')
    real = BiRealNet(18, padding='tf_same', conv_cfg=None,
                     act_cfg=dict(type='ReLU'))
    assert isinstance(real.layer2[0].conv, InputPadConv2d)
    assert isinstance(binary.conv1, InputPadConv2d)
    assert isinstance(binary.maxpool, InputPadMaxPool2d)
    real.load_state_dict(binary.state_dict())  # strict: same keys
    x = torch.randn(1, 3, 40, 40)
    assert real.eval()(x)[0].shape == binary.eval()(x)[0].shape == (1, 512,
                                                                    2, 2)


def test_input_pad_layers_refuse_what_is_not_a_mode_that_pads_input():
    for bad in (1, 'symmetric', 'same'):
        with pytest.raises(InputError, match=(
                r"^InputPadConv2d pads its input by a mode of \('tf_same',\)"
                f', got padding={bad!r}$')):
            InputPadConv2d(3, 8, 3, padding=bad)
    with pytest.raises(InputError, match=r'^InputPadMaxPool2d pads'):
        InputPadMaxPool2d(3, 2, padding='symmetric')


def test_a_padding_mode_is_one_entry_of_the_table(monkeypatch):
    # a made-up mode that pads everything after: the layers, BinaryConv2d
    # and the backbone take it with no other change
    def all_after(size, kernel, stride):
        return 0, sum(tf_same_pads(size, kernel, stride))

    monkeypatch.setitem(padding_mod.INPUT_PADS, 'all_after', all_after)
    monkeypatch.setattr(padding_mod, 'PADDINGS',
                        (*padding_mod.PADDINGS, 'all_after'))
    x = torch.randn(1, 8, 9, 9)
    conv = BinaryConv2d(8, 8, 3, padding='all_after', bias=False)
    assert conv.input_pads(x) == (0, 2, 0, 2)
    net = BiRealNet(18, stem_channels=8, base_channels=8,
                    padding='all_after').eval()
    assert isinstance(net.conv1, InputPadConv2d)
    assert net.conv1.input_padding == 'all_after'
    assert net(torch.randn(1, 3, 64, 64))[0].shape == (1, 64, 2, 2)


def test_complexity_is_that_of_the_symmetric_network():
    # same output sizes, so the same MACs; the pads are F.pad, no FLOPs
    # (64 px: every stride-2 layer meets an even size, as at 224)
    x = torch.randn(1, 3, 64, 64)
    figures = [
        analyze_complexity(BiRealNet(18, padding=p), x).to_dict()
        for p in ('symmetric', 'tf_same')
    ]
    assert figures[0] == figures[1]
    assert figures[0]['bops'] > 0
