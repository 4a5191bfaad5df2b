"""Binarizers, BinaryConv2d and the pre-training activations.

Every expected value is computed here from the formulas of the paper (Liu
et al., Bi-Real Net, ECCV 2018, arXiv:1808.00278; the authors' PyTorch
release where it differs), element by element in Python where that is
practical, never by calling the code under test.
"""
import itertools

import pytest
import torch
import torch.nn.functional as F
from mmcv.cnn import build_activation_layer, build_conv_layer

import mmbireal  # noqa: F401 (registers BinaryConv2d and LeakyClip)
from mmbireal.models import binarizers as B
from mmbireal.models.binary_conv import BinaryConv2d, binary_convs
from mmbireal.registry import BINARIZERS
from mmbireal.utils.errors import InputError

DTYPES = (torch.float32, torch.float64)

# exactly 0, inside (-1, 0) and (0, 1), exactly -1 and +1, and |x| > 1
SPECIAL = [0.0, -0.5, -0.25, -0.999, 0.3, 0.75, 0.001, -1.0, 1.0, -1.5, 2.0,
           -3.0, 1.0001, -1.0001, 0.5, 0.0]

ACT_NAMES = ('approx_sign', 'ste')
WEIGHT_NAMES = ('magnitude_aware', 'scaled_sign', 'sign')


# ---------------------------------------------------------------------------
# scalar formulas (the paper's definitions)
# ---------------------------------------------------------------------------
def _sign(v):
    return 1.0 if v >= 0 else -1.0


def _approx_sign_grad(v):
    if -1 <= v < 0:
        return 2 + 2 * v
    if 0 <= v < 1:
        return 2 - 2 * v
    return 0.0


def _ste_grad(v):
    return 1.0 if abs(v) <= 1 else 0.0


def _tensor(values, dtype, shape=None):
    t = torch.tensor(values, dtype=torch.float64).to(dtype)
    return t if shape is None else t.reshape(shape)


def _map(fn, t):
    """Apply a scalar formula element-wise, keeping shape and dtype."""
    return torch.tensor([fn(v) for v in t.flatten().tolist()],
                        dtype=t.dtype).reshape(t.shape)


def _weight(dtype, seed=0):
    """A (4, 3, 2, 2) weight holding every special value, per-channel
    different magnitudes so that alpha differs between channels."""
    gen = torch.Generator().manual_seed(seed)
    values = SPECIAL * 3  # 48 = 4 * 3 * 2 * 2
    w = torch.tensor(values, dtype=torch.float64)
    w = w[torch.randperm(w.numel(), generator=gen)].reshape(4, 3, 2, 2)
    w = w * torch.tensor([1.0, 1.0, 0.5, 1.0],
                         dtype=torch.float64).reshape(4, 1, 1, 1)
    # keep at least a -1, 0 and +1 in channel 0 and channel 2 after scaling
    w[0, 0, 0] = torch.tensor([-1.0, 1.0], dtype=torch.float64)
    w[0, 1, 0, 0] = 0.0
    w[2, 0, 0] = torch.tensor([-1.0, 1.0], dtype=torch.float64)
    return w.to(dtype)


def _alpha(w):
    """mean|W| over (Cin, kh, kw), one per output channel, by hand."""
    out = []
    for c in range(w.shape[0]):
        vals = w[c].flatten().tolist()
        out.append(sum(abs(v) for v in vals) / len(vals))
    return torch.tensor(out, dtype=w.dtype).reshape(-1, 1, 1, 1)


def _grad_of(fn, x, upstream):
    x = x.clone().requires_grad_(True)
    out = fn(x)
    out.backward(upstream)
    return out.detach(), x.grad


# ---------------------------------------------------------------------------
# activation binarizers
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('name', ACT_NAMES)
def test_act_binarizer_forward_is_sign_with_sign0_plus1(name, dtype):
    fn = B.build_binarizer(name, 'activation')
    x = _tensor(SPECIAL, dtype)
    out = fn(x)
    assert out.dtype == dtype
    assert out.shape == x.shape
    torch.testing.assert_close(out, _map(_sign, x), rtol=0, atol=0)
    assert set(out.unique().tolist()) == {-1.0, 1.0}
    zero = x == 0
    assert zero.any() and (out[zero] == 1).all()


@pytest.mark.parametrize('dtype', DTYPES)
def test_approx_sign_gradient_formula(dtype):
    x = _tensor(SPECIAL, dtype)
    gen = torch.Generator().manual_seed(1)
    upstream = torch.randn(x.shape, generator=gen, dtype=torch.float64)
    upstream = upstream.to(dtype)
    _, grad = _grad_of(B.ApproxSign(), x, upstream)
    assert grad.dtype == dtype
    expected = _map(_approx_sign_grad, x) * upstream
    torch.testing.assert_close(grad, expected)


@pytest.mark.parametrize('dtype', DTYPES)
def test_approx_sign_gradient_at_breakpoints(dtype):
    x = _tensor([-1.0, 0.0, 1.0, -0.5, 0.5, -2.0, 2.0], dtype)
    _, grad = _grad_of(B.ApproxSign(), x, torch.ones_like(x))
    expected = _tensor([0.0, 2.0, 0.0, 1.0, 1.0, 0.0, 0.0], dtype)
    torch.testing.assert_close(grad, expected, rtol=0, atol=0)


def _paper_F(x):
    """The paper's piecewise polynomial whose derivative ApproxSign uses."""
    return torch.where(
        x < -1, -torch.ones_like(x),
        torch.where(x < 0, 2 * x + x * x,
                    torch.where(x < 1, 2 * x - x * x, torch.ones_like(x))))


@pytest.mark.parametrize('dtype', DTYPES)
def test_approx_sign_gradient_matches_autograd_of_paper_polynomial(dtype):
    gen = torch.Generator().manual_seed(2)
    x = (torch.rand(2000, generator=gen, dtype=torch.float64) * 3 - 1.5)
    far = ((x + 1).abs() > 1e-3) & (x.abs() > 1e-3) & ((x - 1).abs() > 1e-3)
    x = x[far].to(dtype)
    # every piece is sampled
    for lo, hi in ((-1.5, -1), (-1, 0), (0, 1), (1, 1.5)):
        assert ((x > lo) & (x < hi)).sum() > 50
    upstream = torch.randn(x.shape, generator=gen,
                           dtype=torch.float64).to(dtype)
    _, grad = _grad_of(B.ApproxSign(), x, upstream)
    _, grad_ref = _grad_of(_paper_F, x, upstream)
    torch.testing.assert_close(grad, grad_ref)
    # and the forward is the sign the polynomial approximates
    torch.testing.assert_close(B.ApproxSign()(x), torch.sign(x))


@pytest.mark.parametrize('dtype', DTYPES)
def test_ste_gradient_formula(dtype):
    x = _tensor(SPECIAL, dtype)
    gen = torch.Generator().manual_seed(3)
    upstream = torch.randn(x.shape, generator=gen,
                           dtype=torch.float64).to(dtype)
    _, grad = _grad_of(B.STE(), x, upstream)
    assert grad.dtype == dtype
    torch.testing.assert_close(grad, _map(_ste_grad, x) * upstream)
    # |x| <= 1 is inclusive at both ends
    _, g = _grad_of(B.STE(), _tensor([-1.0, 1.0, -1.0001, 1.0001], dtype),
                    torch.ones(4, dtype=dtype))
    assert g.tolist() == [1.0, 1.0, 0.0, 0.0]


# ---------------------------------------------------------------------------
# weight binarizers
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('name', ('magnitude_aware', 'scaled_sign'))
def test_scaled_weight_binarizer_forward(name, dtype):
    w = _weight(dtype)
    out = B.build_binarizer(name, 'weight')(w)
    assert out.dtype == dtype and out.shape == w.shape
    alpha = _alpha(w)
    # the channels really have different scales
    assert len(set(alpha.flatten().tolist())) > 1
    torch.testing.assert_close(out, alpha * _map(_sign, w))
    # W == 0 maps to +alpha
    zero = w == 0
    assert zero.any()
    torch.testing.assert_close(out[zero], alpha.expand_as(w)[zero])


@pytest.mark.parametrize('dtype', DTYPES)
def test_sign_weight_binarizer_forward_is_exactly_pm1(dtype):
    w = _weight(dtype)
    out = B.Sign()(w)
    assert out.dtype == dtype
    torch.testing.assert_close(out, _map(_sign, w), rtol=0, atol=0)
    assert set(out.unique().tolist()) == {-1.0, 1.0}


def _upstream(w, seed=4):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(w.shape, generator=gen,
                       dtype=torch.float64).to(w.dtype)


@pytest.mark.parametrize('dtype', DTYPES)
def test_magnitude_aware_gradient(dtype):
    w = _weight(dtype)
    g = _upstream(w)
    _, grad = _grad_of(B.MagnitudeAware(), w, g)
    assert grad.dtype == dtype
    mask = _map(lambda v: 1.0 if abs(v) < 1 else 0.0, w)  # strict
    torch.testing.assert_close(grad, _alpha(w) * mask * g)
    # |W| == 1 gets no gradient, W == 0 gets alpha * g
    one = w.abs() == 1
    assert one.any() and (grad[one] == 0).all()
    zero = w == 0
    torch.testing.assert_close(grad[zero],
                               (_alpha(w).expand_as(w) * g)[zero])


@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('name', ('scaled_sign', 'sign'))
def test_clipped_straight_through_weight_gradient(name, dtype):
    w = _weight(dtype)
    g = _upstream(w)
    _, grad = _grad_of(B.build_binarizer(name, 'weight'), w, g)
    assert grad.dtype == dtype
    # alpha is detached: no alpha factor, no derivative of alpha
    torch.testing.assert_close(grad, _map(_ste_grad, w) * g)
    one = w.abs() == 1
    assert one.any()
    torch.testing.assert_close(grad[one], g[one], rtol=0, atol=0)


# ---------------------------------------------------------------------------
# lookup by name
# ---------------------------------------------------------------------------
def test_lookup_none_returns_none():
    assert B.build_binarizer(None, 'activation') is None
    assert B.build_binarizer(None, 'weight') is None


@pytest.mark.parametrize('kind,name,cls', [
    ('activation', 'approx_sign', B.ApproxSign),
    ('activation', 'ste', B.STE),
    ('weight', 'magnitude_aware', B.MagnitudeAware),
    ('weight', 'scaled_sign', B.ScaledSign),
    ('weight', 'sign', B.Sign),
])
def test_lookup_by_name_dict_or_instance(kind, name, cls):
    assert {c.name for c in B.registered_binarizers(kind)} >= set(
        ACT_NAMES if kind == 'activation' else WEIGHT_NAMES)
    assert BINARIZERS.get(cls.__name__) is cls
    by_name = B.build_binarizer(name, kind)
    by_dict = B.build_binarizer(dict(type=cls.__name__), kind)
    assert type(by_name) is cls and type(by_dict) is cls
    assert by_name.name == name and by_name.kind == kind
    instance = cls()
    assert B.build_binarizer(instance, kind) is instance


@pytest.mark.parametrize('kind,accepted,bad', [
    ('activation', ACT_NAMES, 'foo'),
    ('activation', ACT_NAMES, 'magnitude_aware'),
    ('weight', WEIGHT_NAMES, 'bar'),
    ('weight', WEIGHT_NAMES, 'approx_sign'),
])
def test_lookup_unknown_name_raises(kind, accepted, bad):
    with pytest.raises(InputError) as info:
        B.build_binarizer(bad, kind)
    msg = str(info.value)
    assert msg.startswith(f'unknown {kind} binarizer {bad!r}; accepted: ')
    for name in accepted:
        assert repr(name) in msg
    assert msg.endswith(', None')


@pytest.mark.parametrize('kind,cfg,match', [
    ('activation', dict(type='Sign'),
     "unknown activation binarizer type 'Sign'; accepted: 'ApproxSign', "),
    ('weight', dict(type='Nope'), "unknown weight binarizer type 'Nope'"),
    ('weight', dict(kind='sign'), 'unknown weight binarizer type None'),
    ('activation', B.Sign(), 'unknown activation binarizer Sign()'),
    ('activation', dict(type='ApproxSign', clip=2),
     "activation binarizer .*'clip'"),
])
def test_bad_binarizer_configs_raise_one_line(kind, cfg, match):
    with pytest.raises(InputError, match=match) as info:
        B.build_binarizer(cfg, kind)
    assert '\n' not in str(info.value)


# ---------------------------------------------------------------------------
# BinaryConv2d
# ---------------------------------------------------------------------------
def _ref_act(name, x):
    if name is None:
        return x
    return torch.where(x >= 0, torch.ones_like(x), -torch.ones_like(x))


def _ref_weight(name, w):
    if name is None:
        return w
    s = torch.where(w >= 0, torch.ones_like(w), -torch.ones_like(w))
    if name == 'sign':
        return s
    return _alpha(w) * s


def _conv(act, weight, cin=3, cout=4, k=3, stride=1, padding=1,
          bias=False, **kwargs):
    return build_conv_layer(
        dict(type='BinaryConv2d', act_binarizer=act,
             weight_binarizer=weight, **kwargs),
        cin, cout, k, stride=stride, padding=padding, bias=bias)


def _input(shape, dtype=torch.float64, seed=5):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=gen, dtype=torch.float64) * 1.5
    x.view(-1)[:len(SPECIAL)] = torch.tensor(SPECIAL, dtype=torch.float64)
    return x.to(dtype)


def test_binary_conv_is_registered_and_defaults():
    conv = build_conv_layer(dict(type='BinaryConv2d'), 2, 3, 3, padding=1)
    assert type(conv) is BinaryConv2d
    assert conv.act_binarizer == 'approx_sign'
    assert conv.weight_binarizer == 'magnitude_aware'


@pytest.mark.parametrize(
    'act,weight,stride,padding,bias',
    [(a, w, s, p, b) for (a, w), (s, p, b) in zip(
        itertools.product(('approx_sign', 'ste', None),
                          ('magnitude_aware', 'scaled_sign', 'sign', None)),
        itertools.cycle([(1, 1, False), (2, 1, False), (1, 0, True),
                         (2, 2, False)]))])
def test_binary_conv_forward_matches_hand_computation(act, weight, stride,
                                                      padding, bias):
    conv = _conv(act, weight, stride=stride, padding=padding,
                 bias=bias).double()
    assert isinstance(conv, BinaryConv2d)
    assert conv.act_binarizer == act and conv.weight_binarizer == weight
    x = _input((2, 3, 7, 6))
    with torch.no_grad():
        out = conv(x)
        w = conv.weight.detach()
        expected = F.conv2d(_ref_act(act, x), _ref_weight(weight, w),
                            conv.bias, stride, padding)
    assert out.shape == expected.shape
    torch.testing.assert_close(out, expected)
    with torch.no_grad():
        torch.testing.assert_close(conv.binary_weight(),
                                   _ref_weight(weight, w))


@pytest.mark.parametrize('act', ('approx_sign', 'ste'))
def test_binary_conv_pads_binarized_input_with_zeros(act):
    conv = _conv(act, 'sign', cin=2, cout=3, padding=1).double()
    with torch.no_grad():
        conv.weight.copy_(_input(conv.weight.shape, seed=6))
    x = -torch.rand(1, 2, 5, 5, dtype=torch.float64) - 0.1  # all negative
    with torch.no_grad():
        out = conv(x)
    wb = _ref_weight('sign', conv.weight.detach())
    xb = -torch.ones_like(x)
    zero_pad = F.conv2d(F.pad(xb, [1, 1, 1, 1], value=0.0), wb)
    minus_pad = F.conv2d(F.pad(xb, [1, 1, 1, 1], value=-1.0), wb)
    plus_pad = F.conv2d(F.pad(xb, [1, 1, 1, 1], value=1.0), wb)
    # the case discriminates: the borders differ between the paddings
    border = torch.ones_like(out, dtype=torch.bool)
    border[..., 1:-1, 1:-1] = False
    assert (zero_pad[border] != minus_pad[border]).any()
    assert (zero_pad[border] != plus_pad[border]).any()
    torch.testing.assert_close(out, zero_pad, rtol=0, atol=0)
    # interior: a full -1 window, the same for every padding
    torch.testing.assert_close(out[..., 1:-1, 1:-1],
                               minus_pad[..., 1:-1, 1:-1], rtol=0, atol=0)


@pytest.mark.parametrize('act,deriv', [('approx_sign', _approx_sign_grad),
                                       ('ste', _ste_grad)])
@pytest.mark.parametrize('weight', ('magnitude_aware', 'sign'))
@pytest.mark.parametrize('stride', (1, 2))
def test_binary_conv_input_gradient_is_binarizer_derivative_times_conv_t(
        act, deriv, weight, stride):
    conv = _conv(act, weight, stride=stride, padding=1).double()
    x = _input((2, 3, 6, 6), seed=7).requires_grad_(True)
    out = conv(x)
    gen = torch.Generator().manual_seed(8)
    upstream = torch.randn(out.shape, generator=gen, dtype=torch.float64)
    out.backward(upstream)

    # reference: conv on a detached binarized input, then the chain rule
    xb = _ref_act(act, x.detach()).requires_grad_(True)
    wb = _ref_weight(weight, conv.weight.detach())
    ref = F.conv2d(xb, wb, None, stride, 1)
    grad_xb, = torch.autograd.grad(ref, xb, upstream)
    expected = grad_xb * _map(deriv, x.detach())
    assert (expected != 0).any() and (expected == 0).any()
    torch.testing.assert_close(x.grad, expected)


@pytest.mark.parametrize('weight', ('magnitude_aware', 'scaled_sign', 'sign'))
def test_binary_conv_weight_gradient_follows_its_binarizer(weight):
    conv = _conv('approx_sign', weight, padding=1).double()
    with torch.no_grad():
        conv.weight.copy_(_input(conv.weight.shape, seed=9) * 0.8)
        conv.weight.view(-1)[:2] = torch.tensor([1.0, -1.0])  # clip edges
    x = _input((2, 3, 5, 5), seed=10)
    out = conv(x)
    upstream = _upstream(out, seed=11)
    out.backward(upstream)
    w = conv.weight.detach()
    wb = _ref_weight(weight, w).requires_grad_(True)
    ref = F.conv2d(_ref_act('approx_sign', x), wb, None, 1, 1)
    grad_wb, = torch.autograd.grad(ref, wb, upstream)
    if weight == 'magnitude_aware':  # the paper: alpha * 1[|w| < 1]
        expected = _alpha(w) * (w.abs() < 1).to(w.dtype) * grad_wb
    else:  # clipped straight-through: 1[|w| <= 1]
        expected = (w.abs() <= 1).to(w.dtype) * grad_wb
    assert (expected == 0).any() and (expected != 0).any()
    torch.testing.assert_close(conv.weight.grad, expected)


@pytest.mark.parametrize('kwargs', [dict(act_binarizer='sgn'),
                                    dict(weight_binarizer='xnor'),
                                    dict(act_binarizer='sign'),
                                    dict(weight_binarizer='ste')])
def test_binary_conv_unknown_binarizer_raises(kwargs):
    bad = next(iter(kwargs.values()))
    with pytest.raises(InputError, match=repr(bad)):
        build_conv_layer(dict(type='BinaryConv2d', **kwargs), 2, 2, 3)


def test_binary_conv_unknown_binarizer_at_run_time_raises_and_keeps_state():
    conv = _conv('approx_sign', 'magnitude_aware')
    with pytest.raises(InputError, match='nope'):
        conv.weight_binarizer = 'nope'
    with pytest.raises(InputError, match='nope'):
        conv.act_binarizer = 'nope'
    assert conv.weight_binarizer == 'magnitude_aware'
    assert conv.act_binarizer == 'approx_sign'


def test_binary_conv_rejects_non_zero_padding_mode():
    with pytest.raises(InputError, match='reflect'):
        build_conv_layer(dict(type='BinaryConv2d'), 2, 2, 3, padding=1,
                         padding_mode='reflect')
    with pytest.raises(InputError, match='zeros'):
        BinaryConv2d(2, 2, 3, padding=1, padding_mode='circular')


def test_binary_conv_switch_weight_binarizer_at_run_time():
    conv = _conv('approx_sign', 'magnitude_aware', padding=1).double()
    x = _input((1, 3, 5, 5), seed=12)
    with torch.no_grad():
        before = conv(x)
        # Kaiming-uniform init: alpha is far from 1
        assert not set(conv.binary_weight().abs().unique().tolist()) <= {1.0}
        conv.weight_binarizer = 'sign'
        assert conv.weight_binarizer == 'sign'
        wb = conv.binary_weight()
        assert set(wb.unique().tolist()) == {-1.0, 1.0}
        after = conv(x)
        expected = F.conv2d(_ref_act('approx_sign', x),
                            _ref_weight('sign', conv.weight), None, 1, 1)
    torch.testing.assert_close(after, expected, rtol=0, atol=0)
    assert not torch.allclose(before, after)
    # and back to real activations
    conv.act_binarizer = None
    with torch.no_grad():
        torch.testing.assert_close(
            conv(x), F.conv2d(x, _ref_weight('sign', conv.weight), None, 1,
                              1))


def test_binary_conv_repr_names_binarizers():
    text = repr(_conv('ste', 'scaled_sign'))
    assert "act_binarizer='ste'" in text
    assert "weight_binarizer='scaled_sign'" in text


# ---------------------------------------------------------------------------
# activations of the real-valued pre-training
# ---------------------------------------------------------------------------
def _leaky_clip(v, lo=-1.0, hi=1.0, slope=0.1):
    if v < lo:
        return lo + slope * (v - lo)
    if v > hi:
        return hi + slope * (v - hi)
    return v


@pytest.mark.parametrize('dtype', DTYPES)
def test_leaky_clip_default_values_and_gradient(dtype):
    act = build_activation_layer(dict(type='LeakyClip'))
    x = _tensor([-3.0, -1.5, -0.999, -0.5, 0.0, 0.25, 0.999, 1.5, 4.0],
                dtype)
    out, grad = _grad_of(act, x, torch.ones_like(x))
    assert out.dtype == dtype
    torch.testing.assert_close(out, _map(_leaky_clip, x))
    # spot values: -1 + 0.1 * (-3 + 1) and 1 + 0.1 * (4 - 1)
    torch.testing.assert_close(out[0], torch.tensor(-1.2, dtype=dtype))
    torch.testing.assert_close(out[-1], torch.tensor(1.3, dtype=dtype))
    expected_grad = _tensor([0.1, 0.1, 1, 1, 1, 1, 1, 0.1, 0.1], dtype)
    torch.testing.assert_close(grad, expected_grad)


def test_leaky_clip_is_continuous_at_the_ends():
    act = build_activation_layer(dict(type='LeakyClip'))
    x = torch.tensor([-1.0, 1.0], dtype=torch.float64)
    eps = 1e-9
    torch.testing.assert_close(act(x - eps), act(x + eps))
    torch.testing.assert_close(act(x), x)


def test_leaky_clip_configurable():
    act = build_activation_layer(
        dict(type='LeakyClip', min=-2.0, max=0.5, slope=0.25))
    x = _tensor([-4.0, -2.5, -1.0, 0.0, 0.4, 0.7, 3.0], torch.float64)
    out, grad = _grad_of(act, x, torch.ones_like(x))
    torch.testing.assert_close(
        out, _map(lambda v: _leaky_clip(v, -2.0, 0.5, 0.25), x))
    torch.testing.assert_close(
        grad, _tensor([0.25, 0.25, 1, 1, 1, 0.25, 0.25], torch.float64))


@pytest.mark.parametrize('lo,hi', [(1.0, 1.0), (1.0, -1.0)])
def test_leaky_clip_rejects_empty_range(lo, hi):
    with pytest.raises(InputError, match='min'):
        build_activation_layer(dict(type='LeakyClip', min=lo, max=hi))


@pytest.mark.parametrize('dtype', DTYPES)
def test_clip_is_hardtanh(dtype):
    act = build_activation_layer(dict(type='Clip'))
    x = _tensor(SPECIAL, dtype)
    out, grad = _grad_of(act, x, torch.ones_like(x))
    torch.testing.assert_close(
        out, _map(lambda v: min(1.0, max(-1.0, v)), x), rtol=0, atol=0)
    outside = x.abs() > 1
    assert (grad[outside] == 0).all()
    assert (grad[x.abs() < 1] == 1).all()


def test_binary_weight_is_cached_without_autograd_only():
    conv = BinaryConv2d(4, 8, 3, padding=1, bias=False).eval()
    with torch.no_grad():
        first = conv.binary_weight()
        assert conv.binary_weight() is first  # reused, not recomputed
        conv.weight.mul_(-1)  # an optimizer step or load_state_dict
        flipped = conv.binary_weight()
    assert flipped is not first
    assert torch.equal(flipped, -first)
    conv.weight_binarizer = 'sign'
    with torch.no_grad():
        assert set(conv.binary_weight().unique().tolist()) <= {-1.0, 1.0}
    # with autograd the weight is binarized afresh and gets a gradient
    conv.train()
    out = conv(torch.randn(1, 4, 5, 5)).sum()
    out.backward()
    assert conv.weight.grad is not None


def test_binary_weight_cache_sees_writes_through_data_after_a_mode_change():
    """mmengine's EMAHook swaps the averaged weights in through ``.data``
    (no version bump) before validation; PreciseBN has run a no-grad
    forward in train mode just before. Validation must use the new
    weights."""
    conv = BinaryConv2d(4, 8, 3, padding=1, bias=False)
    x = torch.randn(1, 4, 5, 5)
    with torch.no_grad():
        conv(x)  # PreciseBN-like forward, train mode
        conv.eval()
        before = conv(x)
        conv.train()
        conv.weight.data.copy_(-conv.weight.data)  # the EMA swap
        conv.eval()
        after = conv(x)
    torch.testing.assert_close(after, -before)


def test_binary_conv_trains_under_autocast():
    conv = BinaryConv2d(8, 8, 3, padding=1, bias=True)
    x = torch.randn(2, 8, 6, 6, requires_grad=True)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = conv(x)
    assert out.dtype == torch.bfloat16
    out.float().sum().backward()
    assert x.grad.dtype == torch.float32
    assert conv.weight.grad.dtype == torch.float32
    assert conv.bias.grad.dtype == torch.float32
    assert torch.isfinite(conv.weight.grad).all()


@pytest.mark.parametrize('backend', ('torch', 'native'))
@pytest.mark.parametrize('act,weight', [('approx_sign', 'magnitude_aware'),
                                        ('ste', 'scaled_sign'),
                                        ('approx_sign', 'sign')])
@pytest.mark.parametrize('dtype', (torch.bfloat16, torch.float16))
def test_binary_conv_under_autocast_equals_its_binarizers_composed(
        backend, act, weight, dtype):
    """--amp on a GPU: the fused sign + conv gives the output and gradients
    of its two binarizers and a plain conv, each under autocast (the
    native kernels take float32 only and hand low precision to PyTorch)."""
    conv = _conv(act, weight, cin=8, cout=8, bias=True, backend=backend)
    x = _input((2, 8, 6, 6), dtype=torch.float32, seed=12)

    def run(forward):
        conv.zero_grad()
        inputs = x.clone().requires_grad_(True)
        with torch.autocast('cpu', dtype=dtype):
            out = forward(inputs)
        out.float().square().sum().backward()
        return [out, inputs.grad, conv.weight.grad, conv.bias.grad]

    def composed(inputs):
        binary_w = conv._weight_bin(conv.weight, conv._backend)
        return conv._conv_forward(conv._act(inputs, conv._backend), binary_w,
                                  conv.bias)

    fused, reference = run(conv), run(composed)
    assert fused[0].dtype == dtype
    for got, expected in zip(fused, reference):
        assert torch.isfinite(got).all()
        assert torch.equal(got, expected)


# ---------------------------------------------------------------------------
# a binarizer added outside the package: one class, registered
# ---------------------------------------------------------------------------
@BINARIZERS.register_module()
class WideClipSTE(B.ActBinarizer):
    """Straight-through on ``|x| <= 2``; no native kernel code."""

    def surrogate_grad(self, x, out=None):
        return torch.abs(x, out=out).le_(2)


@BINARIZERS.register_module()
class StrictScaledSign(B.WeightBinarizer):
    """``alpha * sign(w)``, alpha detached, gradient on ``|w| < 1``."""

    scaled, strict_clip = True, True


def test_new_binarizers_are_found_by_name_and_dict():
    assert WideClipSTE.name == 'wide_clip_ste'
    assert StrictScaledSign.name == 'strict_scaled_sign'
    conv = _conv('wide_clip_ste', dict(type='StrictScaledSign'))
    assert conv.act_binarizer == 'wide_clip_ste'
    assert conv.weight_binarizer == 'strict_scaled_sign'
    assert isinstance(conv.act_binarizer_obj, WideClipSTE)
    # both kinds list them among what they accept, and only there
    with pytest.raises(InputError, match="'approx_sign', 'ste', "
                       "'wide_clip_ste', None"):
        B.build_binarizer('strict_scaled_sign', 'activation')


@pytest.mark.parametrize('dtype', DTYPES)  # float32: the kernels' path
@pytest.mark.parametrize('backend', ('auto', 'torch'))
def test_new_binarizers_train_with_their_own_gradients(dtype, backend):
    conv = _conv('wide_clip_ste', 'strict_scaled_sign', padding=1,
                 backend=backend).to(dtype)
    with torch.no_grad():
        conv.weight.copy_(_input(conv.weight.shape, dtype, seed=13) * 0.8)
        conv.weight.view(-1)[:2] = torch.tensor([1.0, -1.0])  # clip edges
    x = (_input((2, 3, 6, 6), dtype, seed=14) * 1.5).requires_grad_()
    out = conv(x)
    upstream = _upstream(out, seed=15)
    out.backward(upstream)

    w = conv.weight.detach()
    xb = _ref_act('ste', x.detach()).requires_grad_()
    wb = (_alpha(w) * _ref_act('ste', w)).requires_grad_()
    ref = F.conv2d(xb, wb, None, 1, 1)
    torch.testing.assert_close(out, ref)
    grad_xb, grad_wb = torch.autograd.grad(ref, (xb, wb), upstream)
    expected_x = grad_xb * (x.detach().abs() <= 2).to(dtype)
    expected_w = grad_wb * (w.abs() < 1).to(dtype)  # strict, no alpha
    # the cases discriminate: 1 < |x| <= 2 passes here, not under ste
    inner = (x.abs() > 1) & (x.abs() <= 2)
    assert inner.any() and (expected_x[inner] != 0).any()
    assert (w.abs() == 1).any() and (expected_w == 0).any()
    torch.testing.assert_close(x.grad, expected_x)
    torch.testing.assert_close(conv.weight.grad, expected_w)


def test_new_binarizers_train_a_bireal_net_built_from_a_config():
    from mmpretrain.registry import MODELS
    torch.manual_seed(0)
    backbone = MODELS.build(
        dict(type='BiRealNet', depth=18, stem_channels=8, base_channels=8,
             conv_cfg=dict(type='BinaryConv2d',
                           act_binarizer=dict(type='WideClipSTE'),
                           weight_binarizer='strict_scaled_sign')))
    convs = [conv for _, conv in binary_convs(backbone)]
    assert len(convs) == 16
    assert all(isinstance(c.act_binarizer_obj, WideClipSTE) and
               isinstance(c.weight_binarizer_obj, StrictScaledSign)
               for c in convs)
    model = torch.nn.Sequential(backbone, _LastStagePool(),
                                torch.nn.Linear(64, 4))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    x = torch.randn(32, 3, 32, 32)  # float32 CPU: the kernels where they go
    y = torch.arange(32) % 4
    losses = []
    for _ in range(20):
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        assert all(c.weight.grad is not None and
                   c.weight.grad.abs().sum() > 0 for c in convs)
        optimizer.step()
        losses.append(loss.item())
    # single steps are noisy (batch statistics of a 1x1 last stage), so the
    # test compares four-step means: 0.52 here, 0.52-0.64 over seeds 0-5
    first, last = sum(losses[:4]) / 4, sum(losses[-4:]) / 4
    assert last < 0.8 * first, losses


class _LastStagePool(torch.nn.Module):

    def forward(self, feats):
        return feats[-1].mean((2, 3))


def test_binary_conv_predicates_and_binary_convs():
    model = torch.nn.Sequential(
        _conv('approx_sign', 'sign'), _conv(None, 'sign'),
        _conv('ste', None), _conv(None, None), torch.nn.Conv2d(3, 3, 1))
    found = binary_convs(model)
    assert [name for name, _ in found] == ['0', '1', '2', '3']
    assert [(c.binarizes_input, c.binarizes_weight) for _, c in found] == [
        (True, True), (False, True), (True, False), (False, False)]
    conv = found[3][1]
    conv.act_binarizer = dict(type='STE')
    conv.weight_binarizer = B.Sign()
    assert conv.binarizes_input and conv.binarizes_weight
    assert conv.act_binarizer == 'ste' and conv.weight_binarizer == 'sign'
