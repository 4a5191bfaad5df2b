"""The one-pass CPU binarization kernels against the PyTorch ops they
replace: same bits (the per-channel mean |w| to float32 rounding), when
they are used and when not, and training through them.

The formulas themselves are tested in test_binarizers.py, whose float32
cases run through the kernels and float64 cases through PyTorch ops.
"""
import pytest
import torch
from helpers import failing_native_build, native_library_or_skip

from mmbireal.models import binarize_kernels as K
from mmbireal.models import binarizers as B
from mmbireal.models.binary_conv import BinaryConv2d
from mmbireal.utils import native
from mmbireal.utils.errors import InputError


@pytest.fixture(scope='module')
def kernels():
    return native_library_or_skip(K._kernels)


def _native_coded(kind):
    return [c for c in B.registered_binarizers(kind)
            if kind == 'weight' or c.native_code is not None]


def _activations(numel=70_001, seed=0):
    """More elements than the kernels' threading threshold, with exact
    zeros (both signs), +-1, values around +-1 and NaN."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(numel, generator=g) * 1.2
    x[:8] = torch.tensor([0.0, -0.0, 1.0, -1.0, 1.0000001, -0.9999999,
                          float('nan'), 3.0])
    return x


def _same(a, b):
    assert torch.equal(a.isnan(), b.isnan())
    assert torch.equal(a.nan_to_num(), b.nan_to_num())


def test_sign_matches_pytorch_ops(kernels):
    x = _activations()
    _same(kernels.sign(x), torch.sign(x).add_(0.5).sign_())
    _same(kernels.sign(x), K.TORCH_OPS.sign(x))
    assert kernels.sign(x)[:4].tolist() == [1.0, 1.0, 1.0, -1.0]


@pytest.mark.parametrize('cls', _native_coded('activation'),
                         ids=lambda c: c.name)
def test_surrogate_gradient_matches_pytorch_ops(kernels, cls):
    binarizer = cls()
    x, grad = _activations(), _activations(seed=1)
    expected = grad * binarizer.surrogate_grad(x)
    _same(K.TORCH_OPS.mul_surrogate_grad(x, grad, binarizer), expected)
    _same(kernels.mul_surrogate_grad(x, grad, binarizer), expected)
    kernels.mul_surrogate_grad(x, grad, binarizer, out=grad)  # in place
    _same(grad, expected)


class _Wide(B.ActBinarizer):
    """No kernel of its own (and not registered)."""

    def surrogate_grad(self, x, out=None):
        return torch.abs(x, out=out).le_(2)


class _BadCode(B.STE):
    native_code = 99


def test_surrogate_without_native_code_runs_pytorch_ops(kernels):
    x, grad = _activations(), _activations(seed=1)
    expected = grad * (x.abs() <= 2)
    assert (x.abs() > 1).any() and (x.abs() > 2).any()
    _same(kernels.mul_surrogate_grad(x, grad, _Wide()), expected)
    with pytest.raises(ValueError, match='native_code=99: no such kernel'):
        kernels.mul_surrogate_grad(x, grad, _BadCode())


@pytest.mark.parametrize('cls', _native_coded('weight'),
                         ids=lambda c: c.name)
def test_weight_binarizer_matches_pytorch_ops(kernels, cls):
    binarizer = cls()
    torch.manual_seed(0)
    w = torch.randn(64, 32, 3, 3) * 0.6  # some |w| >= 1
    w[0, 0, 0, :2] = torch.tensor([0.0, 1.0])
    grad = torch.randn_like(w)
    w_b, alpha = kernels.binarize_weight(w, binarizer)
    if binarizer.scaled or binarizer.scaled_grad:
        torch.testing.assert_close(alpha, K.channel_scale(w), rtol=1e-6,
                                   atol=0)
    else:
        assert alpha is None
    sign = torch.where(w >= 0, 1.0, -1.0)
    _same(w_b, sign * alpha if binarizer.scaled else sign)
    # with the same alpha, both backends give the same bits
    _same(K.TORCH_OPS.binarize_weight(w, binarizer, alpha=alpha)[0], w_b)
    mask = (w.abs() < 1 if binarizer.strict_clip else w.abs() <= 1).float()
    scale = mask * alpha if binarizer.scaled_grad else mask
    for ops in (kernels, K.TORCH_OPS):
        _same(ops.weight_grad_(w, grad.clone(), binarizer, alpha),
              grad * scale)


def test_kernels_are_used_only_where_they_apply(kernels):
    x = torch.randn(2, 3, 4, 5)
    assert K.kernels_for(x) is kernels
    assert K.kernels_for(x.to(memory_format=torch.channels_last)) is kernels
    assert K.kernels_for(x, torch.empty_like(x)) is kernels
    assert K.kernels_for(x.double()) is None
    assert K.kernels_for(x.half()) is None
    assert K.kernels_for(x.transpose(1, 2)) is None  # not dense
    assert K.kernels_for(x[:, :, ::2]) is None
    # laid out differently: element i is not at offset i in both
    assert K.kernels_for(
        x, torch.empty_like(x, memory_format=torch.channels_last)) is None
    assert K.kernels_for(x, torch.empty(2, 3, 5, 4)) is None
    leaf = x.clone().requires_grad_()
    assert K.kernels_for(leaf) is None  # autograd would not see the op
    with torch.no_grad():
        assert K.kernels_for(leaf) is kernels


def test_backend_is_chosen_once_per_call(kernels):
    x = torch.randn(2, 3, 4, 5)
    alpha = torch.rand(2, 1, 1, 1)
    for backend in ('auto', 'native'):
        assert K.binarize_ops(backend, x) is kernels
        assert K.binarize_ops(backend, x, None, scale=alpha) is kernels
        assert K.binarize_ops(backend, x.double()) is K.TORCH_OPS
        # a scale the kernels cannot read
        assert K.binarize_ops(backend, x, scale=alpha.double()) is \
            K.TORCH_OPS
        assert K.binarize_ops(backend, x, scale=alpha[:1]) is K.TORCH_OPS
    assert K.binarize_ops('torch', x) is K.TORCH_OPS


@pytest.mark.parametrize('backend', ['cuda', 'Torch', None])
def test_unknown_backend_is_one_line_error(backend):
    with pytest.raises(InputError) as info:
        BinaryConv2d(2, 2, 3, backend=backend)
    assert str(info.value) == (f'unknown backend {backend!r}; accepted: '
                               'auto, native, torch')
    conv = BinaryConv2d(2, 2, 3)
    with pytest.raises(InputError):
        conv.backend = backend
    assert conv.backend == 'auto'


def test_disabled_by_environment(monkeypatch):
    monkeypatch.setenv('MMBIREAL_TRAIN_KERNELS', 'torch')
    lazy = native.LazyLibrary(K.build_kernels, 'MMBIREAL_TRAIN_KERNELS',
                              'kernels', 'PyTorch ops')
    assert lazy.get() is None


def test_build_failure_is_one_line_error(tmp_path):
    with pytest.raises(native.NativeBuildError, match='no C\\+\\+ compiler'):
        K.build_kernels(cxx='/nonexistent/g++', directory=str(tmp_path))


def test_without_kernels_training_goes_on_after_one_warning(monkeypatch):
    x = torch.tensor([-2.0, -0.5, 0.0, 0.5], requires_grad=True)
    with failing_native_build(monkeypatch, K, 'build_kernels', K._kernels):
        for _ in range(2):
            B.ApproxSign()(x).backward(torch.ones(4))
    assert x.grad.tolist() == [0.0, 2.0, 4.0, 2.0]  # twice 0, 1, 2, 1


def test_native_backend_without_compiler_is_an_error(monkeypatch):
    with failing_native_build(monkeypatch, K, 'build_kernels', K._kernels):
        with pytest.raises(InputError) as info:
            BinaryConv2d(2, 2, 3, backend='native')
        assert str(info.value) == (
            "backend 'native' needs the native library (mmbireal: one-pass "
            'binarization kernels), which is not available (see the '
            'warning); accepted here: auto, torch')
        assert BinaryConv2d(2, 2, 3).backend == 'auto'  # falls back


def _conv_step(conv, x):
    x = x.clone().requires_grad_()
    y = conv(x)
    (y * torch.linspace(-1, 1, y.numel()).reshape(y.shape)).sum().backward()
    grads = (x.grad, conv.weight.grad)
    conv.weight.grad = None
    return y.detach(), grads


KERNEL_OPS = ('sign', 'mul_surrogate_grad', 'binarize_weight',
              'weight_grad_')


def _kernel_calls(monkeypatch):
    """The names of the kernel ops called from now on."""
    calls = []
    for name in KERNEL_OPS:
        method = getattr(K.NativeBinarizeOps, name)
        monkeypatch.setattr(
            K.NativeBinarizeOps, name,
            lambda self, *a, _m=method, _n=name, **k: calls.append(_n) or
            _m(self, *a, **k))
    return calls


@pytest.mark.parametrize('act,weight', [('approx_sign', 'magnitude_aware'),
                                        ('ste', 'scaled_sign'),
                                        ('approx_sign', 'sign')])
@pytest.mark.parametrize('channels_last', [False, True])
def test_binary_conv_training_step_same_with_and_without_kernels(
        kernels, monkeypatch, act, weight, channels_last):
    torch.manual_seed(0)
    conv = BinaryConv2d(16, 24, 3, padding=1, bias=False, act_binarizer=act,
                        weight_binarizer=weight, backend='native')
    x = torch.randn(4, 16, 30, 30)  # large enough for the threaded paths
    if channels_last:
        conv = conv.to(memory_format=torch.channels_last)
        x = x.to(memory_format=torch.channels_last)
    calls = _kernel_calls(monkeypatch)
    y, (gx, gw) = _conv_step(conv, x)
    assert set(calls) == set(KERNEL_OPS)
    conv.backend = 'torch'
    calls.clear()
    y_ref, (gx_ref, gw_ref) = _conv_step(conv, x)
    assert not calls
    # alpha differs in the last bits (summation order); nothing else does
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(gx, gx_ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(gw, gw_ref, rtol=1e-5, atol=1e-6)
    assert gx.stride() == gx_ref.stride()
    # the inference path (no autograd) too
    with torch.no_grad():
        torch.testing.assert_close(conv(x), y_ref, rtol=0, atol=0)
        assert not calls
        conv.backend = 'auto'
        torch.testing.assert_close(conv(x), y, rtol=0, atol=0)
        assert calls


def test_environment_overrides_the_backend(kernels, monkeypatch):
    torch.manual_seed(0)
    conv = BinaryConv2d(8, 8, 3, padding=1, backend='native')
    x = torch.randn(2, 8, 6, 6)
    calls = _kernel_calls(monkeypatch)
    y, (gx, gw) = _conv_step(conv, x)
    assert calls
    calls.clear()
    monkeypatch.setenv('MMBIREAL_TRAIN_KERNELS', 'torch')
    K._kernels.reset()
    try:
        # no error for 'native' either: the environment wins
        assert BinaryConv2d(2, 2, 3, backend='native').backend == 'native'
        y_ref, (gx_ref, gw_ref) = _conv_step(conv, x)
        assert not calls
    finally:
        K._kernels.reset()
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(gx, gx_ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(gw, gw_ref, rtol=1e-5, atol=1e-6)
