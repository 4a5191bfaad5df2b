"""ReActNet's parts in BiRealNet: RSign (LearnableBias before the sign) and
RPReLU after the residual add; gradients against their formulas, placement
against the authors' block, and 'off' leaving the network unchanged."""
import doctest

import pytest
import torch
import torch.nn.functional as F
from helpers import randomize_bn

import mmbireal  # noqa: F401 (registers the parts)
from mmbireal.models import (
    BinaryConv2d,
    BiRealNet,
    LearnableBias,
    RPReLU,
    react_parts,
)
from mmbireal.models.backbones import BiRealBlock
from mmbireal.utils import InputError

REACT = dict(sign_bias_cfg=dict(type='LearnableBias'),
             block_act_cfg=dict(type='RPReLU'))
SMALL = dict(in_channels=1, stem_type='small', stem_channels=8,
             base_channels=8)


def _approx_sign_grad(u):
    return (2 - 2 * u.abs()).clamp(min=0)


def test_learnable_bias_gradient_is_the_channel_sum():
    layer = LearnableBias(3)
    with torch.no_grad():
        layer.bias.copy_(torch.tensor([0.5, -1.0, 2.0]))
    x = torch.randn(2, 3, 4, 5, requires_grad=True)
    g = torch.randn(2, 3, 4, 5)
    out = layer(x)
    torch.testing.assert_close(out, x + layer.bias.view(1, 3, 1, 1))
    out.backward(g)
    torch.testing.assert_close(layer.bias.grad, g.sum((0, 2, 3)))
    torch.testing.assert_close(x.grad, g)


def test_rprelu_forward_and_gradients_by_formula():
    act = RPReLU(3)
    assert torch.equal(act.prelu.weight, torch.full((3, ), 0.25))
    assert not act.shift_in.bias.any() and not act.shift_out.bias.any()
    b1, a, b2 = (torch.tensor([0.3, -0.2, 0.1]),
                 torch.tensor([0.25, -0.5, 1.5]),
                 torch.tensor([-1.0, 0.5, 2.0]))
    with torch.no_grad():
        act.shift_in.bias.copy_(b1)
        act.prelu.weight.copy_(a)
        act.shift_out.bias.copy_(b2)
    x = torch.randn(2, 3, 4, 4, requires_grad=True)
    g = torch.randn(2, 3, 4, 4)
    out = act(x)
    view = (1, 3, 1, 1)
    y = x.detach() + b1.view(view)
    positive = y > 0
    assert positive.any() and (~positive).any()
    expected = torch.where(positive, y, a.view(view) * y) + b2.view(view)
    torch.testing.assert_close(out, expected)
    out.backward(g)
    slope = torch.where(positive, torch.ones_like(y),
                        a.view(view).expand_as(y))
    torch.testing.assert_close(x.grad, g * slope)
    torch.testing.assert_close(act.shift_in.bias.grad,
                               (g * slope).sum((0, 2, 3)))
    torch.testing.assert_close(act.prelu.weight.grad,
                               (g * y.clamp(max=0)).sum((0, 2, 3)))
    torch.testing.assert_close(act.shift_out.bias.grad, g.sum((0, 2, 3)))


def _react_block(in_channels=4, out_channels=4, stride=1, downsample=None):
    block = BiRealBlock(
        in_channels, out_channels, stride=stride, downsample=downsample,
        conv_cfg=dict(type='BinaryConv2d', act_binarizer='approx_sign',
                      weight_binarizer='scaled_sign'), **REACT)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in (block.act.bias, block.block_act.shift_in.bias,
                  block.block_act.shift_out.bias):
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
        block.block_act.prelu.weight.uniform_(0.1, 0.9, generator=gen)
    randomize_bn(block)
    return block.eval()


def test_rsign_bias_gradient_goes_through_the_surrogate():
    """d loss / d b_c = sum over n, h, w of (conv input grad) * s'(x + b),
    with ApproxSign's s'(u) = max(0, 2 - 2|u|)."""
    block = _react_block()
    conv = block.conv
    x = torch.randn(2, 4, 5, 5, generator=torch.Generator().manual_seed(1))
    g = torch.randn(2, 4, 5, 5)
    block.bn(conv(block.act(x))).backward(g)
    # by hand: the sign's output as a leaf, the conv on exact signs
    u = x + block.act.bias.detach().view(1, -1, 1, 1)
    signs = torch.where(u >= 0, 1.0, -1.0).requires_grad_()
    weight = conv.binary_weight().detach()
    block.bn(F.conv2d(signs, weight, padding=1)).backward(g)
    expected = (signs.grad * _approx_sign_grad(u)).sum((0, 2, 3))
    assert expected.abs().sum() > 0
    torch.testing.assert_close(block.act.bias.grad, expected)


def test_block_places_the_parts_as_the_authors_block():
    """out = rprelu(bn(conv(sign(x + b0))) + downsample(x)): the shortcut
    takes x itself, not x + b0 (authors' BasicBlock: move0 feeds the sign
    only; move1, prelu, move2 follow the residual add)."""
    down = torch.nn.Sequential(
        torch.nn.AvgPool2d(2, 2, ceil_mode=True, count_include_pad=False),
        torch.nn.Conv2d(4, 8, 1, bias=False), torch.nn.BatchNorm2d(8))
    block = _react_block(4, 8, stride=2, downsample=down)
    x = torch.randn(2, 4, 6, 6, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        u = x + block.act.bias.view(1, -1, 1, 1)
        signs = torch.where(u >= 0, 1.0, -1.0)
        y = block.bn(F.conv2d(signs, block.conv.binary_weight(), stride=2,
                              padding=1)) + down(x)
        act = block.block_act
        y = y + act.shift_in.bias.view(1, -1, 1, 1)
        y = torch.where(y > 0, y, act.prelu.weight.view(1, -1, 1, 1) * y)
        expected = y + act.shift_out.bias.view(1, -1, 1, 1)
        torch.testing.assert_close(block(x), expected)


def test_off_by_default_keeps_the_state_dict_and_forward():
    plain = BiRealNet(18, **SMALL).eval()
    react = BiRealNet(18, **SMALL, **REACT).eval()
    new = {k for k in react.state_dict() if k not in plain.state_dict()}
    assert set(react.state_dict()) - new == set(plain.state_dict())
    assert new and all('.act.bias' in k or '.block_act.' in k for k in new)
    assert not [n for n, _ in plain.named_modules() if 'block_act' in n]
    # with the parts at identity (slope 1) the two networks agree exactly
    missing = react.load_state_dict(plain.state_dict(), strict=False)
    assert set(missing.missing_keys) == new
    with torch.no_grad():
        for m in react.modules():
            if isinstance(m, RPReLU):
                m.prelu.weight.fill_(1.0)
    x = torch.randn(2, 1, 28, 28, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert torch.equal(react(x)[0], plain(x)[0])


@pytest.mark.parametrize('cps', (1, 2))
def test_every_binary_conv_gets_a_bias_of_its_input_width(cps):
    model = BiRealNet(18, convs_per_shortcut=cps, **SMALL, **REACT)
    count = 0
    for layer in model.res_layers:
        for block in getattr(model, layer):
            for act, conv, _ in block.conv_units():
                assert isinstance(conv, BinaryConv2d)
                assert isinstance(act, LearnableBias)
                assert act.bias.numel() == conv.in_channels
                count += 1
            assert block.block_act.prelu.weight.numel() == \
                block.conv_units()[-1][1].out_channels
    assert count == 16
    x = torch.randn(2, 1, 28, 28)
    model(x)[0].sum().backward()
    acts = [p for n, p in model.named_parameters() if 'act' in n]
    # an RSign bias per binary conv, RPReLU's three per block
    assert len(acts) == 16 + 3 * (16 // cps)
    assert all(p.grad is not None and bool(p.grad.abs().sum() > 0)
               for p in acts)


@pytest.mark.parametrize('kwargs,match', [
    (dict(sign_bias_cfg=dict(type='LearnableBias'),
          act_cfg=dict(type='ReLU'), conv_cfg=None), 'set act_cfg=None'),
    (dict(block_act_cfg=dict(type='NoSuchAct')), 'block_act_cfg: .*NoSuch'),
    (dict(sign_bias_cfg='LearnableBias'), 'sign_bias_cfg must be None or'),
])
def test_bad_part_configs_are_one_line_errors(kwargs, match):
    with pytest.raises(InputError, match=match) as info:
        BiRealNet(18, **SMALL, **kwargs)
    assert '\n' not in str(info.value)


def test_docstring_examples_run():
    result = doctest.testmod(react_parts)
    assert result.attempted >= 3 and result.failed == 0
