"""The BiRealNet backbone: topology, shapes, state-dict layout, options."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from helpers import randomize_bn
from mmpretrain.models import ResNet
from mmpretrain.registry import MODELS
from torch.nn.modules.batchnorm import _BatchNorm

import mmbireal  # noqa: F401 (registers BiRealNet, BinaryConv2d, ...)
from mmbireal.models import BinaryConv2d, BiRealNet
from mmbireal.models.backbones import (
    STEM_GEOMETRIES,
    BinaryBasicBlock,
    BinaryResBlock,
    BinaryResNet,
    BiRealBlock,
)
from mmbireal.utils.errors import InputError

IMAGENET_FC = 512 * 1000 + 1000
PAPER_PARAMS = {18: 11_689_512, 34: 21_797_672}
BINARY_CONVS = {18: 16, 34: 32}
REAL_ACTS = [dict(type='ReLU'), dict(type='LeakyClip'), dict(type='Clip')]
ACTIVATION_TYPES = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU,
                    nn.GELU, nn.SiLU, nn.Hardtanh, nn.Sigmoid, nn.Tanh)


def _num_params(model):
    return sum(p.numel() for p in model.parameters())


def _sign(x):
    return torch.where(x >= 0, torch.ones_like(x), -torch.ones_like(x))


def _bn_eval(x, bn):
    shape = (1, -1, 1, 1)
    return ((x - bn.running_mean.reshape(shape)) /
            torch.sqrt(bn.running_var.reshape(shape) + bn.eps) *
            bn.weight.reshape(shape) + bn.bias.reshape(shape))


# ---------------------------------------------------------------------------
# parameter count and topology
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('depth', (18, 34))
def test_param_count_matches_paper_and_resnet(depth):
    resnet = _num_params(ResNet(depth)) + IMAGENET_FC
    assert resnet == PAPER_PARAMS[depth]
    for cps in (1, 2):
        model = BiRealNet(depth, convs_per_shortcut=cps)
        assert _num_params(model) + IMAGENET_FC == PAPER_PARAMS[depth], cps
        assert model.feat_dim == 512


@pytest.mark.parametrize('depth', (18, 34))
def test_binary_and_real_convs(depth):
    model = BiRealNet(depth)
    binary = [m for m in model.modules() if isinstance(m, BinaryConv2d)]
    real = [(n, m) for n, m in model.named_modules()
            if type(m) is nn.Conv2d]
    assert len(binary) == BINARY_CONVS[depth]
    for m in binary:
        assert m.kernel_size == (3, 3) and m.padding == (1, 1)
        assert m.bias is None
        assert m.act_binarizer == 'approx_sign'
        assert m.weight_binarizer == 'magnitude_aware'
    # the stem conv and the three 1x1 downsample convs are real
    names = sorted(n for n, _ in real)
    assert names == ['conv1'] + [f'layer{i}.0.downsample.1'
                                 for i in (2, 3, 4)]
    stem = model.conv1
    assert stem.kernel_size == (7, 7) and stem.stride == (2, 2)
    for name, m in real[1:]:
        assert m.kernel_size == (1, 1) and m.stride == (1, 1), name
        assert m.bias is None
    # every conv is one of the two kinds
    assert sum(isinstance(m, nn.Conv2d) for m in model.modules()) == \
        BINARY_CONVS[depth] + 4


@pytest.mark.parametrize('cps', (1, 2))
def test_no_relu_in_binary_network(cps):
    model = BiRealNet(18, convs_per_shortcut=cps)
    acts = [n for n, m in model.named_modules()
            if isinstance(m, ACTIVATION_TYPES)]
    assert acts == []
    # the ReLU pre-training network does have them: the check can fail
    real = BiRealNet(18, convs_per_shortcut=cps, conv_cfg=None,
                     act_cfg=dict(type='ReLU'))
    assert sum(isinstance(m, nn.ReLU) for m in real.modules()) == 16
    # no functional ReLU either: every block's input and output keeps
    # negative values
    seen = []
    for layer in model.res_layers:
        for block in getattr(model, layer):
            block.register_forward_hook(
                lambda m, args, out: seen.extend((args[0], out)))
    model.eval()
    with torch.no_grad():
        model(torch.randn(2, 3, 32, 32))
    assert len(seen) == 2 * 16 // cps
    assert all((t < 0).any() for t in seen)


def test_stem_by_hand():
    model = BiRealNet(18, out_indices=(0, )).eval()
    randomize_bn(model)
    stem_out = []
    model.layer1.register_forward_pre_hook(
        lambda m, args: stem_out.append(args[0]))
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        model(x)
        expected = F.max_pool2d(
            _bn_eval(F.conv2d(x, model.conv1.weight, None, 2, 3), model.bn1),
            3, 2, 1)
    torch.testing.assert_close(stem_out[0], expected)
    assert (expected < 0).any()


def test_downsample_layout():
    model = BiRealNet(18)
    sd = model.state_dict()
    for i, (cin, cout) in zip((2, 3, 4), ((64, 128), (128, 256),
                                          (256, 512))):
        ds = getattr(model, f'layer{i}')[0].downsample
        assert isinstance(ds[0], nn.AvgPool2d)
        assert ds[0].kernel_size == 2 and ds[0].stride == 2
        assert sd[f'layer{i}.0.downsample.1.weight'].shape == (cout, cin, 1,
                                                               1)
        for key in ('weight', 'bias', 'running_mean', 'running_var',
                    'num_batches_tracked'):
            assert f'layer{i}.0.downsample.2.{key}' in sd
        assert not any(k.startswith(f'layer{i}.0.downsample.0')
                       for k in sd)
        assert getattr(model, f'layer{i}')[0].conv.stride == (2, 2)
    # no downsample where shapes match
    assert all(b.downsample is None for b in model.layer1)
    assert all(b.downsample is None
               for i in (2, 3, 4) for b in getattr(model, f'layer{i}')[1:])


# ---------------------------------------------------------------------------
# shapes
# ---------------------------------------------------------------------------
def test_output_shapes_imagenet_stem():
    model = BiRealNet(18, out_indices=(0, 1, 2, 3)).eval()
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 64, 64))
    assert [tuple(o.shape) for o in outs] == [
        (1, 64, 16, 16), (1, 128, 8, 8), (1, 256, 4, 4), (1, 512, 2, 2)]


@pytest.mark.parametrize('cps', (1, 2))
def test_output_shapes_small_stem_odd_size(cps):
    model = BiRealNet(18, in_channels=1, stem_type='small',
                      convs_per_shortcut=cps,
                      out_indices=(0, 1, 2, 3)).eval()
    assert model.conv1.kernel_size == (3, 3)
    assert model.conv1.stride == (1, 1)
    with torch.no_grad():
        outs = model(torch.randn(2, 1, 28, 28))
    assert [tuple(o.shape) for o in outs] == [
        (2, 64, 28, 28), (2, 128, 14, 14), (2, 256, 7, 7), (2, 512, 4, 4)]


def test_default_and_negative_out_indices():
    model = BiRealNet(18, stem_type='small').eval()
    with torch.no_grad():
        x = torch.randn(1, 3, 8, 8)
        outs = model(x)
        assert len(outs) == 1 and outs[0].shape == (1, 512, 1, 1)
        model2 = BiRealNet(18, stem_type='small', out_indices=(1, -1)).eval()
        model2.load_state_dict(model.state_dict())
        outs2 = model2(x)
    assert [o.shape[1] for o in outs2] == [128, 512]
    torch.testing.assert_close(outs2[1], outs[0])


# ---------------------------------------------------------------------------
# state dict shared by the binary and the real pre-training networks
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('act_cfg', REAL_ACTS, ids=lambda c: c['type'])
def test_state_dict_shared_with_real_networks(act_cfg):
    torch.manual_seed(0)
    binary = BiRealNet(18, stem_type='small')
    real = BiRealNet(18, stem_type='small', conv_cfg=None, act_cfg=act_cfg)
    assert not any(isinstance(m, BinaryConv2d) for m in real.modules())
    sd_b, sd_r = binary.state_dict(), real.state_dict()
    assert list(sd_b) == list(sd_r)
    for k in sd_b:
        assert sd_b[k].shape == sd_r[k].shape, k
    # real -> binary
    result = binary.load_state_dict(sd_r, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    for k, v in binary.state_dict().items():
        assert torch.equal(v, sd_r[k]), k
    # binary -> real
    randomize_bn(binary, seed=1)
    sd_b = binary.state_dict()
    real.load_state_dict(sd_b, strict=True)
    for k, v in real.state_dict().items():
        assert torch.equal(v, sd_b[k]), k


def test_real_network_uses_activation_before_conv():
    model = BiRealNet(18, stem_type='small', conv_cfg=None,
                      act_cfg=dict(type='Clip')).eval()
    randomize_bn(model)
    block = model.layer1[1]
    x = torch.randn(1, 64, 5, 5) * 3
    with torch.no_grad():
        expected = _bn_eval(
            F.conv2d(x.clamp(-1, 1), block.conv.weight, None, 1, 1),
            block.bn) + x
        torch.testing.assert_close(block(x), expected)


# ---------------------------------------------------------------------------
# one block by hand
# ---------------------------------------------------------------------------
def _avg_pool_valid(x):
    """2x2/2 average over the in-bounds positions of each window (ceil)."""
    ph, pw = x.shape[-2] % 2, x.shape[-1] % 2
    xs = F.pad(x, [0, pw, 0, ph])
    ones = F.pad(torch.ones_like(x), [0, pw, 0, ph])
    return F.avg_pool2d(xs, 2, 2) / F.avg_pool2d(ones, 2, 2)


def _binary_conv_ref(x, w, stride):
    alpha = w.abs().mean(dim=(1, 2, 3), keepdim=True)
    return F.conv2d(_sign(x), alpha * _sign(w), None, stride, 1)


@pytest.mark.parametrize('size', (8, 7))
def test_block_forward_by_hand(size):
    torch.manual_seed(0)
    model = BiRealNet(18).eval()
    randomize_bn(model)
    x = torch.randn(2, 64, size, size)

    # identity shortcut
    block = model.layer1[0]
    with torch.no_grad():
        out = block(x)
        expected = _bn_eval(_binary_conv_ref(x, block.conv.weight, 1),
                            block.bn) + x
    torch.testing.assert_close(out, expected)

    # downsampling shortcut: avg-pool 2x2/2, real 1x1 conv, BN
    block = model.layer2[0]
    ds = block.downsample
    with torch.no_grad():
        out = block(x)
        short = _bn_eval(F.conv2d(_avg_pool_valid(x), ds[1].weight), ds[2])
        expected = _bn_eval(_binary_conv_ref(x, block.conv.weight, 2),
                            block.bn) + short
    assert out.shape == (2, 128, (size + 1) // 2, (size + 1) // 2)
    torch.testing.assert_close(out, expected)


def test_basic_block_forward_by_hand():
    """convs_per_shortcut=2: two binary convs under one shortcut."""
    torch.manual_seed(0)
    model = BiRealNet(18, convs_per_shortcut=2).eval()
    randomize_bn(model)
    assert len(model.layer1) == 2
    block = model.layer1[0]
    x = torch.randn(1, 64, 6, 6)
    with torch.no_grad():
        mid = _bn_eval(_binary_conv_ref(x, block.conv1.weight, 1), block.bn1)
        expected = _bn_eval(_binary_conv_ref(mid, block.conv2.weight, 1),
                            block.bn2) + x
        torch.testing.assert_close(block(x), expected)


# ---------------------------------------------------------------------------
# freezing and norm_eval
# ---------------------------------------------------------------------------
def test_frozen_stages():
    model = BiRealNet(18, frozen_stages=1, stem_type='small')
    model.train()
    for m in (model.conv1, model.bn1, model.layer1):
        for p in m.parameters():
            assert not p.requires_grad
    assert not model.bn1.training
    assert all(not m.training for m in model.layer1.modules())
    for i in (2, 3, 4):
        layer = getattr(model, f'layer{i}')
        assert all(p.requires_grad for p in layer.parameters())
        assert all(m.training for m in layer.modules()
                   if isinstance(m, _BatchNorm))
    # frozen running stats do not move in a training forward
    before = model.layer1[0].bn.running_mean.clone()
    before_stem = model.bn1.running_mean.clone()
    model(torch.randn(2, 3, 8, 8) * 5 + 1)
    assert torch.equal(model.layer1[0].bn.running_mean, before)
    assert torch.equal(model.bn1.running_mean, before_stem)
    assert not torch.equal(model.layer2[0].bn.running_mean,
                           torch.zeros_like(model.layer2[0].bn.running_mean))


def test_frozen_stem_only():
    model = BiRealNet(18, frozen_stages=0).train()
    assert not model.conv1.weight.requires_grad
    assert not model.bn1.training
    assert all(p.requires_grad for p in model.layer1.parameters())
    assert model.layer1[0].bn.training


def test_norm_eval():
    model = BiRealNet(18, norm_eval=True)
    model.train()
    bns = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    assert len(bns) == 1 + 16 + 3
    assert all(not m.training for m in bns)
    assert model.training
    assert all(p.requires_grad for p in model.parameters())
    # without norm_eval train() does switch them on
    model = BiRealNet(18).train()
    assert all(m.training for m in model.modules()
               if isinstance(m, _BatchNorm))


# ---------------------------------------------------------------------------
# argument validation
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('kwargs,bad,accepted', [
    (dict(depth=50), '50', ['18', '34']),
    (dict(depth=18, stem_type='foo'), 'foo', ['imagenet', 'small']),
    (dict(depth=18, convs_per_shortcut=3), '3', ['1', '2']),
    (dict(depth=18, in_channels=0), 'in_channels', ['positive']),
    (dict(depth=18, in_channels=-1), '-1', ['positive']),
    (dict(depth=18, base_channels=0), 'base_channels', ['positive']),
    (dict(depth=18, out_indices=(4, )), '(4,)', ['[-4, 4)']),
    (dict(depth=18, frozen_stages=5), '5', ['-1', '4']),
    (dict(depth=18, in_channels=True), 'True', ['positive int']),
    (dict(depth=18, out_indices='3'), "'3'", ['sequence of ints']),
    (dict(depth=18, frozen_stages=None), 'None', ['-1', '4']),
])
def test_invalid_arguments(kwargs, bad, accepted):
    with pytest.raises(InputError) as info:
        BiRealNet(**kwargs)
    msg = str(info.value)
    assert bad in msg
    for word in accepted:
        assert word in msg


def test_an_int_out_indices_is_one_stage():
    model = BiRealNet(18, stem_type='small', in_channels=1, out_indices=2)
    assert model.out_indices == (2, )
    assert len(model(torch.randn(1, 1, 28, 28))) == 1


def test_invalid_zero_in_channels_message_names_value():
    with pytest.raises(InputError, match='got 0'):
        BiRealNet(18, in_channels=0)


def test_wrong_input_channels():
    model = BiRealNet(18, in_channels=1, stem_type='small').eval()
    with pytest.raises(InputError) as info:
        model(torch.randn(1, 3, 8, 8))
    msg = str(info.value)
    assert 'in_channels=1' in msg and '(1, 3, 8, 8)' in msg


# ---------------------------------------------------------------------------
# registry and gradients
# ---------------------------------------------------------------------------
def test_build_from_registry():
    model = MODELS.build(dict(type='BiRealNet', depth=18))
    assert isinstance(model, BiRealNet)
    assert model.depth == 18
    assert _num_params(model) + IMAGENET_FC == PAPER_PARAMS[18]


@pytest.mark.parametrize('cps', (1, 2))
def test_gradients_reach_every_conv_and_bn(cps):
    torch.manual_seed(0)
    model = BiRealNet(18, stem_type='small', convs_per_shortcut=cps,
                      out_indices=(0, 1, 2, 3)).train()
    outs = model(torch.randn(2, 3, 8, 8))
    # random weights: a plain sum would give the last BN's weight zero grad
    loss = sum((o * torch.randn_like(o)).sum() for o in outs)
    loss.backward()
    checked = 0
    for name, m in model.named_modules():
        if isinstance(m, (nn.Conv2d, _BatchNorm)):
            g = m.weight.grad
            assert g is not None, name
            assert torch.isfinite(g).all() and g.abs().sum() > 0, name
            checked += 1
    assert checked == 2 * (1 + 16 + 3)  # stem, 3x3 and 1x1 convs + BNs
    assert all(p.grad is not None for p in model.parameters())


# ---------------------------------------------------------------------------
# arch_settings, BinaryResNet and make_res_layer
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('depth,stages', [(18, [2, 2, 2, 2]),
                                          (34, [3, 4, 6, 3])])
def test_binary_resnet_is_the_convs_per_shortcut_2_network(depth, stages):
    model = MODELS.build(dict(type='BinaryResNet', depth=depth))
    assert isinstance(model, BinaryResNet) and isinstance(model, BiRealNet)
    assert [len(getattr(model, n)) for n in model.res_layers] == stages
    assert all(type(b) is BinaryBasicBlock
               for n in model.res_layers for b in getattr(model, n))
    assert model.convs_per_shortcut == 2
    assert _num_params(model) + IMAGENET_FC == PAPER_PARAMS[depth]
    # the legacy switch builds the same network: same keys, same shapes
    legacy = BiRealNet(depth, convs_per_shortcut=2)
    assert type(legacy) is BiRealNet
    assert {k: v.shape for k, v in legacy.state_dict().items()} == \
        {k: v.shape for k, v in model.state_dict().items()}
    # and 1 selects the Bi-Real table whatever the class
    assert type(BinaryResNet(depth, convs_per_shortcut=1).layer1[0]) is \
        BiRealBlock


def test_arch_settings_of_a_subclass():
    class Tiny(BiRealNet):
        arch_settings = {10: (BiRealBlock, (1, 1, 1, 1))}

    model = Tiny(10, stem_type='small').eval()
    assert [len(getattr(model, n)) for n in model.res_layers] == [1] * 4
    with torch.no_grad():
        assert model(torch.randn(1, 3, 8, 8))[0].shape == (1, 512, 1, 1)
    with pytest.raises(InputError,
                       match=r'invalid depth 18 for Tiny; accepted: \[10\]'):
        Tiny(18)
    with pytest.raises(InputError,
                       match=r'invalid depth 50 for BinaryResNet; accepted'
                       r': \[18, 34\]'):
        BinaryResNet(50)
    # e.g. --cfg-options model.backbone.depth="[18]": unhashable
    with pytest.raises(InputError,
                       match=r'invalid depth \[18\] for BiRealNet'):
        BiRealNet([18])


class _ThreeConvBlock(BinaryResBlock):
    """Three binary convs under one shortcut."""

    conv_suffixes = ('a', 'b', 'c')


def test_make_res_layer_override_builds_and_runs():
    calls = []

    class LastStageThreeConvs(BiRealNet):

        def make_res_layer(self, **kwargs):
            calls.append({k: kwargs[k] for k in ('num_blocks', 'in_channels',
                                                 'out_channels', 'stride')})
            if kwargs['out_channels'] == 512:
                kwargs.update(block=_ThreeConvBlock, num_blocks=1)
            return super().make_res_layer(**kwargs)

    torch.manual_seed(0)
    model = LastStageThreeConvs(18, stem_type='small',
                                out_indices=(0, 1, 2, 3))
    assert calls == [
        dict(num_blocks=4, in_channels=64, out_channels=64, stride=1),
        dict(num_blocks=4, in_channels=64, out_channels=128, stride=2),
        dict(num_blocks=4, in_channels=128, out_channels=256, stride=2),
        dict(num_blocks=4, in_channels=256, out_channels=512, stride=2),
    ]
    block = model.layer4[0]
    assert len(model.layer4) == 1 and isinstance(block, _ThreeConvBlock)
    assert block.conva.stride == (2, 2) and block.convc.stride == (1, 1)
    assert isinstance(block.convb, BinaryConv2d)  # conv_cfg reached it
    assert block.downsample is not None
    assert 'layer4.0.convc.weight' in model.state_dict()
    outs = model(torch.randn(2, 3, 9, 9))
    assert [tuple(o.shape) for o in outs] == [
        (2, 64, 9, 9), (2, 128, 5, 5), (2, 256, 3, 3), (2, 512, 2, 2)]
    sum((o * torch.randn_like(o)).sum() for o in outs).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0
               for p in block.parameters())


# ---------------------------------------------------------------------------
# the binary-conv listing and the stem table
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('cls', (BiRealNet, BinaryResNet))
@pytest.mark.parametrize('real', (False, True), ids=('binary', 'relu'))
def test_binary_convs_lists_every_3x3_conv_in_forward_order(cls, real):
    kwargs = dict(conv_cfg=None, act_cfg=dict(type='ReLU')) if real else {}
    model = cls(18, stem_type='small', **kwargs).eval()
    listed = [t for n in model.res_layers for b in getattr(model, n)
              for t in b.conv_units()]
    convs = [m for n, m in model.named_modules()
             if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)
             and n != 'conv1']
    assert [id(c) for _, c, _ in listed] == [id(c) for c in convs]
    assert len(listed) == 16
    act_type = nn.ReLU if real else nn.Identity
    assert all(type(a) is act_type for a, _, _ in listed)
    # each triple is what runs, in that order: act, conv, then its norm
    order = []
    for triple in listed:
        for m in triple:
            m.register_forward_hook(
                lambda m, args, out: order.append(id(m)))
    with torch.no_grad():
        model(torch.randn(1, 3, 8, 8))
    assert order == [id(m) for t in listed for m in t]


@pytest.mark.parametrize('stem_type', sorted(STEM_GEOMETRIES))
def test_stem_is_built_from_its_geometry(stem_type):
    geometry = STEM_GEOMETRIES[stem_type]
    model = BiRealNet(18, stem_type=stem_type).eval()
    assert model.stem_geometry is geometry
    k, s, p = geometry.kernel_size, geometry.stride, geometry.padding
    assert model.conv1.kernel_size == (k, k)
    assert model.conv1.stride == (s, s) and model.conv1.padding == (p, p)
    assert isinstance(model.maxpool, nn.Identity) == (
        geometry.max_pool is None)
    # the functional form (what the packed model runs) is the same stem
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(
            geometry.forward(x, model.conv1.weight, None),
            model.maxpool(model.conv1(x)))


def test_docstring_examples_run():
    import doctest

    from mmbireal.models.backbones import bireal_net
    result = doctest.testmod(bireal_net, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 10 and result.failed == 0
