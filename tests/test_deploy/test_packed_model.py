"""Packed 1-bit inference: the engine against the PyTorch reference path
bit for bit, the reference against the training graph's conv, and the
exported network against the float-emulated model."""
import itertools
import os.path as osp
import re
import shutil
import subprocess

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import (
    FMNIST_QUICK_CFG,
    NARROW,
    REPO,
    failing_native_build,
    import_deployment_tool,
    randomize_bn,
    run_tool,
    small_fmnist_model,
)

import mmbireal.deploy.engine as engine_mod
from mmbireal.apis import build_model
from mmbireal.deploy import (
    ExportError,
    PackedBiRealNet,
    affine_epilogue,
    binary_conv3x3_torch,
    engine_weight_layout,
    export_packed,
    get_engine,
    load_packed,
    pack_classifier,
    pack_signs_torch,
    unpack_signs,
)
from mmbireal.deploy.reference import engine_pads
from mmbireal.models import (
    BinaryConv2d,
    BiRealNet,
    WeightBinarizer,
    binary_convs,
)
from mmbireal.models.backbones import (
    STEM_GEOMETRIES,
    BinaryResBlock,
    StemGeometry,
)
from mmbireal.models.padding import PADDINGS
from mmbireal.utils import CheckpointError, InputError

FMNIST_CFG = FMNIST_QUICK_CFG
IN1K_CFG = osp.join(REPO, 'configs', 'birealnet', 'bireal18_8xb16_in1k.py')
SHAPES = [(1, 7, 9), (2, 5, 5), (2, 8, 6)]
CHANNELS = [3, 64, 65, 100, 130]
OUT_CHANNELS = [64, 65, 100, 130, 3, 8, 130]


def _sign(x):
    return torch.where(x >= 0, 1.0, -1.0)


def _case(n, h, w, c, cout, seed):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, h, w, c, generator=gen)
    x[..., ::7] = 0.0  # sign(0) = +1 must hold on every path
    weight = torch.randn(cout, c, 3, 3, generator=gen)
    weight[::3, ::5, 1] = 0.0
    return x, weight, gen


def _cases():
    for i, ((n, h, w), c, stride) in enumerate(
            itertools.product(SHAPES, CHANNELS, (1, 2))):
        yield n, h, w, c, OUT_CHANNELS[i % len(OUT_CHANNELS)], stride, i


def _assert_logits_match(ref, out):
    span = (ref.max() - ref.min()).item()
    assert (out - ref).abs().max().item() <= 1e-3 * span
    assert torch.equal(out.argmax(1), ref.argmax(1))


# ---------------------------------------------------------------------------
# bits and the reference path
# ---------------------------------------------------------------------------
def test_pack_unpack_roundtrip_and_bit_order():
    x = torch.randn(3, 130)
    x[0, 5] = 0.0
    words = pack_signs_torch(x)
    assert words.dtype == torch.int64 and words.shape == (3, 3)
    assert torch.equal(unpack_signs(words, 130), _sign(x))
    # bit j of word k is channel 64k + j, +1 -> 1, padding bits are 0
    one = torch.full((1, 70), -1.0)
    one[0, 0] = one[0, 63] = one[0, 64] = 1.0
    assert pack_signs_torch(one).tolist() == [[1 - 2**63, 1]]


def test_bit_packing_stays_on_its_tensors_device():
    """No CPU constant is mixed in: a GPU model packs its weights where
    they are (the meta device stands in for a GPU here)."""
    words = pack_signs_torch(torch.empty(3, 130, device='meta'))
    assert words.device.type == 'meta' and words.shape == (3, 3)
    assert unpack_signs(words, 130).device.type == 'meta'


def test_the_packed_model_refuses_non_cpu_tensors():
    """The engine reads raw CPU pointers: anything else is one clear
    error, not a crash."""
    packed = PackedBiRealNet(pack_classifier(small_fmnist_model()))
    x = torch.empty(1, packed.in_channels, 28, 28, device='meta')
    with pytest.raises(InputError, match='runs on the CPU only'):
        packed(x)
    with pytest.raises(InputError, match='runs on the CPU only'):
        packed.to('meta')(torch.zeros(x.shape))


@pytest.mark.parametrize('n,h,w,c,cout,stride,seed', list(_cases()))
def test_reference_equals_float_conv_of_signs(n, h, w, c, cout, stride,
                                              seed):
    x, weight, _ = _case(n, h, w, c, cout, seed)
    w_pm1 = unpack_signs(pack_signs_torch(weight.permute(0, 2, 3, 1)),
                         c).permute(0, 3, 1, 2)
    dots = binary_conv3x3_torch(x, w_pm1, stride)
    x_nchw = x.permute(0, 3, 1, 2)
    direct = F.conv2d(_sign(x_nchw), _sign(weight), stride=stride,
                      padding=1)
    assert torch.equal(dots, direct.permute(0, 2, 3, 1))
    # ... and the training layer itself (sign weights: no alpha)
    conv = BinaryConv2d(c, cout, 3, stride, 1, bias=False,
                        weight_binarizer='sign')
    with torch.no_grad():
        conv.weight.copy_(weight)
        assert torch.equal(dots, conv(x_nchw).permute(0, 2, 3, 1))


def test_reference_padding_correction_by_counting():
    """dot = K_valid - 2 * mismatches over the taps inside the image."""
    x, weight, _ = _case(1, 5, 4, 3, 2, 7)
    dots = binary_conv3x3_torch(x, _sign(weight), 1)
    sx, sw = _sign(x), _sign(weight)
    for oy, ox, co in itertools.product(range(5), range(4), range(2)):
        valid = mismatches = 0
        for ky, kx in itertools.product(range(3), range(3)):
            iy, ix = oy - 1 + ky, ox - 1 + kx
            if 0 <= iy < 5 and 0 <= ix < 4:
                valid += 3
                mismatches += int((sx[0, iy, ix] != sw[co, :, ky,
                                                         kx]).sum())
        assert dots[0, oy, ox, co].item() == valid - 2 * mismatches


# ---------------------------------------------------------------------------
# the compiled engine against the reference path
# ---------------------------------------------------------------------------
def test_engine_pack_signs_equals_reference(native):
    x = torch.randn(2, 3, 5, 130)
    x[..., 1] = 0.0
    x[..., 2] = -0.0
    assert torch.equal(native.pack_signs(x), pack_signs_torch(x))


# past 31 words per pixel (where the AVX2 kernel widens its byte sums), in
# rows specialised for 4 and 8 words (256 and 512 channels, full chunks of
# 64 outputs) and in generic ones, with chunks of 6 and 7 weight groups
# (the AVX2 kernel's passes of 4 or 2 groups leave 2, 3 or 1)
LONG_CASES = [(1, 6, 7, 300, 56, 1, 100), (2, 5, 4, 576, 120, 2, 101),
              (1, 4, 5, 256, 64, 1, 102), (1, 5, 6, 512, 128, 2, 103)]


@pytest.mark.parametrize('n,h,w,c,cout,stride,seed',
                         list(_cases()) + LONG_CASES)
def test_engine_bit_exact(native, n, h, w, c, cout, stride, seed):
    x, weight, gen = _case(n, h, w, c, cout, seed)
    bits = pack_signs_torch(weight.permute(0, 2, 3, 1))
    w_pm1 = unpack_signs(bits, c).permute(0, 3, 1, 2).contiguous()
    ref_dots = binary_conv3x3_torch(x, w_pm1, stride)
    ho, wo = ref_dots.shape[1:3]
    assert (ho, wo) == ((h - 1) // stride + 1, (w - 1) // stride + 1)
    scale = torch.randn(cout, generator=gen)
    shift = torch.randn(cout, generator=gen)
    residual = torch.randn(n, ho, wo, cout, generator=gen)
    ref_out = affine_epilogue(ref_dots, scale, shift, residual)
    layout = engine_weight_layout(bits)
    act = native.pack_signs(x)
    for simd in native.supported_simd():
        res = native.conv3x3(act, c, layout, cout, stride, scale, shift,
                             residual, want_dot=True, want_bits=True,
                             simd=simd)
        assert torch.equal(res.dot, ref_dots.to(torch.int32)), simd
        assert torch.equal(res.out, ref_out), simd
        assert torch.equal(res.bits, pack_signs_torch(ref_out)), simd
    # no residual, signs only (the inner conv of a 2-conv block)
    res = native.conv3x3(act, c, layout, cout, stride, scale, shift,
                         want_out=False, want_bits=True)
    assert res.out is None
    assert torch.equal(res.bits,
                       pack_signs_torch(affine_epilogue(ref_dots, scale,
                                                        shift)))


def test_this_cpu_runs_every_simd_level_of_the_engine(native):
    """The engine tests loop over the SIMD levels this CPU supports; a
    level it lacks shows here as a skip instead of passing unseen."""
    from mmbireal.deploy.engine import SIMD_NAMES
    supported = native.supported_simd()
    assert supported[-1] == native.best_simd
    missing = [s for s in SIMD_NAMES.values() if s not in supported]
    if missing:
        pytest.skip(f'not run on this CPU: the engine\'s '
                    f'{", ".join(missing)} kernels (tested where it has them)')


def test_engine_counts_every_mismatch_of_a_long_sum(native):
    # every bit of every word mismatches: 8 per byte, the most a byte-wise
    # count can take; a sum widened later than every 31 words wraps
    c, cout = 640, 16
    x = torch.ones(1, 4, 4, c)
    bits = pack_signs_torch(-torch.ones(cout, 3, 3, c))
    ref_dots = binary_conv3x3_torch(
        x, unpack_signs(bits, c).permute(0, 3, 1, 2).contiguous(), 1)
    assert ref_dots.min().item() == -9 * c  # interior pixels: all 9 taps
    ones, zeros = torch.ones(cout), torch.zeros(cout)
    for simd in native.supported_simd():
        res = native.conv3x3(native.pack_signs(x), c,
                             engine_weight_layout(bits), cout, 1, ones,
                             zeros, want_dot=True, simd=simd)
        assert torch.equal(res.dot, ref_dots.to(torch.int32)), simd


SELFTEST = osp.join(REPO, 'tests', 'native', 'engine_selftest.cpp')
CSRC = osp.join(REPO, 'mmbireal', 'deploy', 'csrc')


def _write_selftest_vectors(path, cases):
    """The reference path's results for engine_selftest.cpp (every other
    case with the 'tf_same' padding)."""
    chunks = []
    for k, (n, h, w, c, cout, stride, seed) in enumerate(cases):
        padding = PADDINGS[k % 2]
        x, weight, gen = _case(n, h, w, c, cout, seed)
        bits = pack_signs_torch(weight.permute(0, 2, 3, 1))
        w_pm1 = unpack_signs(bits, c).permute(0, 3, 1, 2).contiguous()
        dots = binary_conv3x3_torch(x, w_pm1, stride, padding)
        scale = torch.randn(cout, generator=gen)
        shift = torch.randn(cout, generator=gen)
        res = torch.randn(*dots.shape, generator=gen)
        out = affine_epilogue(dots, scale, shift, res)
        pads = engine_pads(padding, h, w, stride)
        chunks += [torch.tensor([n, h, w, c, cout, stride, *pads]), x,
                   engine_weight_layout(bits), scale, shift, res,
                   dots.to(torch.int32), out, pack_signs_torch(out)]
    with open(path, 'wb') as f:
        for t in chunks:
            f.write(t.contiguous().numpy().tobytes())


@pytest.mark.slow
@pytest.mark.parametrize('target', ['portable', 'aarch64'])
def test_engine_selftest_without_x86_simd(tmp_path, target):
    """The plain C++ kernels (every CPU that is not x86, here forced with
    MMB_PORTABLE) and an aarch64 cross build under qemu-aarch64 match the
    reference path bit for bit. No speed is claimed for either."""
    cxx = 'g++' if target == 'portable' else 'aarch64-linux-gnu-g++'
    runner = [] if target == 'portable' else ['qemu-aarch64', '-L',
                                               '/usr/aarch64-linux-gnu']
    if shutil.which(cxx) is None or (runner and shutil.which(runner[0])
                                     is None):
        pytest.skip(f'needs {cxx} {" ".join(runner[:1])} (Debian '
                    'g++-aarch64-linux-gnu, qemu-user)')
    vectors = tmp_path / 'vectors.bin'
    cases = list(_cases())[::5]
    _write_selftest_vectors(vectors, cases)
    exe = tmp_path / 'selftest'
    flags = ['-O2', '-std=c++17', '-fopenmp', '-ffp-contract=off']
    if target == 'portable':
        flags.append('-DMMB_PORTABLE')
    subprocess.run([cxx, *flags, '-I', CSRC, SELFTEST, '-o', str(exe)],
                   check=True, capture_output=True, timeout=300)
    proc = subprocess.run([*runner, str(exe), str(vectors)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith(f'{len(cases)} cases ok (best simd 1)'), \
        proc.stdout


def test_engine_rejects_bad_arguments(native):
    act = native.pack_signs(torch.randn(1, 4, 4, 64))
    layout = engine_weight_layout(
        pack_signs_torch(torch.randn(8, 3, 3, 64)))
    with pytest.raises(ValueError, match='stride'):
        native.conv3x3(act, 64, layout, 8, 3)
    with pytest.raises(ValueError, match='act_bits'):
        wide = engine_weight_layout(
            pack_signs_torch(torch.randn(8, 3, 3, 65)))
        native.conv3x3(act, 65, wide, 8, 1)  # act has 1 word, 65 needs 2
    with pytest.raises(ValueError, match=r'weight must be int64 \(1, 9, 2'):
        native.conv3x3(act, 65, layout, 8, 1)
    with pytest.raises(ValueError, match=r'weight must be int64 \(2, 9, 1'):
        native.conv3x3(act, 64, layout, 16, 1)  # 16 channels need 2 groups


def test_engine_result_does_not_depend_on_threads(native):
    x, weight, _ = _case(2, 9, 7, 130, 100, 3)
    act = native.pack_signs(x)
    layout = engine_weight_layout(pack_signs_torch(weight.permute(0, 2, 3,
                                                                  1)))
    threads = torch.get_num_threads()
    results = []
    try:
        for n in (1, 2, 3):
            torch.set_num_threads(n)
            results.append(native.conv3x3(act, 130, layout, 100, 2,
                                          want_out=False,
                                          want_dot=True).dot)
    finally:
        torch.set_num_threads(threads)
    assert all(torch.equal(results[0], r) for r in results[1:])


def test_no_compiler_falls_back_with_one_warning(monkeypatch, tmp_path):
    with pytest.raises(engine_mod.EngineBuildError,
                       match='no C\\+\\+ compiler'):
        engine_mod.build_engine(cxx='/nonexistent/g++',
                                directory=str(tmp_path))

    with failing_native_build(monkeypatch, engine_mod, 'build_engine',
                              engine_mod._engine):
        assert engine_mod.get_engine() is None
        assert engine_mod.get_engine() is None  # warned once
        packed = PackedBiRealNet(pack_classifier(small_fmnist_model()))
        assert packed.backend == 'torch'
        with pytest.raises(InputError, match="^backend 'native' needs the "
                           r'native library \(mmbireal.deploy: binary conv '
                           r'engine\), which is not available'):
            PackedBiRealNet(pack_classifier(small_fmnist_model()),
                            backend='native')


# ---------------------------------------------------------------------------
# export + load_packed against the float-emulated model
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('extra', [
    {},
    {'model.backbone.conv_cfg.weight_binarizer': 'sign'},
    {'model.backbone.convs_per_shortcut': 2},
],
                         ids=['magnitude_aware', 'bn_retrain_sign',
                              'binary_resnet'])
def test_export_matches_float_model(tmp_path, extra):
    model = small_fmnist_model(**extra)
    path = str(tmp_path / 'small.pth')
    export_packed(model, path)
    x = torch.randn(3, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = model(x, mode='tensor')
    outs = {}
    for backend in ('native', 'torch'):
        if backend == 'native' and get_engine() is None:
            continue
        packed = load_packed(path, backend=backend)
        assert packed.backend == backend
        outs[backend] = packed(x)
        _assert_logits_match(ref, outs[backend])
    if len(outs) == 2:  # both backends compute identical floats
        assert torch.equal(outs['native'], outs['torch'])


@pytest.mark.parametrize('extra', [{}, {'model.backbone.padding': 'tf_same'}],
                         ids=['symmetric', 'tf_same'])
def test_one_model_serves_changing_input_shapes(native, extra):
    """The engine's plan keeps buffers and pads for one shape at a time:
    a model called at one shape, another, then the first again gives what
    a fresh reference model gives at each."""
    packed_dict = pack_classifier(small_fmnist_model(**extra))
    fast = PackedBiRealNet(packed_dict, backend='native')
    gen = torch.Generator().manual_seed(4)
    for shape in [(2, 1, 28, 28), (5, 1, 27, 31), (1, 1, 16, 9),
                  (2, 1, 28, 28)]:
        x = torch.randn(shape, generator=gen)
        ref = PackedBiRealNet(packed_dict, backend='torch')(x)
        assert torch.equal(fast(x), ref), shape


@pytest.mark.parametrize('shape', [(1, 3, 28, 28), (1, 28, 28)])
def test_the_packed_model_names_the_input_it_expects(shape):
    packed = PackedBiRealNet(pack_classifier(small_fmnist_model()),
                             backend='torch')
    with pytest.raises(InputError) as error:
        packed(torch.zeros(shape))
    assert str(error.value) == ('expected input (N, 1, H, W), got '
                                f'{shape}')


def test_network_call_is_bit_exact_at_every_simd_level(native):
    """The whole block stack in one native call (downsample inside the
    engine, odd maps: ceil-mode pooling windows) equals the reference path
    block by block, at every SIMD level and thread count."""
    packed = PackedBiRealNet(pack_classifier(small_fmnist_model(
        **{'model.backbone.convs_per_shortcut': 2})))
    gen = torch.Generator().manual_seed(3)
    feat = torch.randn(2, 13, 11, 16, generator=gen)
    ref = feat
    for block in packed.blocks:
        ref = block.forward_torch(ref)
    blocks = [block.spec() for block in packed.blocks]
    threads = torch.get_num_threads()
    try:
        for simd, n in itertools.product(native.supported_simd(), (1, 3)):
            torch.set_num_threads(n)
            out = native.plan_network(blocks, simd)(feat)
            assert torch.equal(out, ref), (simd, n)
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize('channels', [16, 20], ids=['c16', 'c20_tail'])
def test_fused_stem_max_pool_is_pytorchs_bit_for_bit(native, channels):
    """The engine's max-pool before the blocks equals F.max_pool2d and then
    the blocks, NaN and -inf included, at every SIMD level and thread
    count; 20 channels take the scalar tail."""
    packed = PackedBiRealNet(pack_classifier(small_fmnist_model(**{
        'model.backbone.stem_channels': channels,
        'model.backbone.base_channels': channels,
        'model.head.in_channels': channels * 8})))
    gen = torch.Generator().manual_seed(4)
    feat = torch.randn(2, 13, 11, channels, generator=gen)
    feat[1, 5, 5, 2] = float('nan')
    feat[1, 6, 6, channels - 1] = float('-inf')
    pool = (3, 2, 1)
    ref = F.max_pool2d(feat.permute(0, 3, 1, 2), *pool)
    ref = ref.permute(0, 2, 3, 1).contiguous()
    for block in packed.blocks:
        ref = block.forward_torch(ref)
    assert ref.isnan().any()  # the NaN reached the output
    blocks = [block.spec() for block in packed.blocks]
    threads = torch.get_num_threads()
    try:
        for simd, n in itertools.product(native.supported_simd(), (1, 3)):
            torch.set_num_threads(n)
            out = native.plan_network(blocks, simd, input_pool=pool)(feat)
            torch.testing.assert_close(out, ref, rtol=0, atol=0,
                                       equal_nan=True, msg=str((simd, n)))
    finally:
        torch.set_num_threads(threads)


def _random_images(n, channels, size, mean, std, seed):
    """Normalised random 8-bit images, as the int8 stem expects."""
    gen = torch.Generator().manual_seed(seed)
    pixels = torch.randint(0, 256, (n, channels, size, size), generator=gen)
    mean = torch.tensor(mean).view(1, -1, 1, 1)
    std = torch.tensor(std).view(1, -1, 1, 1)
    return (pixels.float() - mean) / std


@pytest.mark.parametrize('levels', [None, 63])  # this CPU's, 7-bit
@pytest.mark.parametrize('stride,padding,size', [(2, 3, 19), (1, 1, 9)])
def test_int8_stem_errs_only_by_the_weight_rounding(stride, padding, size,
                                                    levels):
    """Folded normalisation and the border correction are exact: the int8
    stem is the int8-rounded folded weights on the pixels minus the same
    weights on the mean image (zero padding: border taps outside the image
    add 0), so its only error is the rounding's on (pixels - mean). Also
    without VNNI, whose int16 pair sums saturate with 8-bit weights."""
    from mmbireal.deploy.int8_stem import Int8Stem, weight_levels
    if getattr(torch.ops.onednn, 'qconv2d_pointwise', None) is None:
        pytest.skip('no oneDNN quantized conv in this PyTorch')
    gen = torch.Generator().manual_seed(0)
    k = 2 * padding + 1
    weight = torch.randn(16, 3, k, k, generator=gen)
    bias = torch.randn(16, generator=gen)
    mean, std = [123.7, 116.3, 103.5], [58.4, 57.1, 57.4]
    stem = Int8Stem(weight, bias, mean, std, stride, padding, levels)
    levels = levels or weight_levels()
    x = _random_images(2, 3, size, mean, std, 1)
    m = torch.tensor(mean).double().view(1, -1, 1, 1)
    s = torch.tensor(std).double().view(1, -1, 1, 1)
    pixels = torch.round(x.double() * s + m)
    folded = weight.double() / s
    rounded = stem.w_int8.double() * stem.w_scale.double().view(-1, 1, 1, 1)
    # the rounding itself, against this test's folded weights: symmetric
    # per output channel, the largest weight at the top code, every weight
    # within half a step
    assert torch.equal(stem.w_int8.abs().amax(dim=(1, 2, 3)),
                       torch.full((16, ), levels, dtype=torch.int8))
    step = folded.abs().amax(dim=(1, 2, 3)) / levels
    # plus what storing the scale as float32 moves the largest code, and
    # 1e-4 of a half step for the stem folding by the float32 std
    slack = levels * (stem.w_scale.double() - step).abs()
    assert ((rounded - folded).abs().amax(dim=(1, 2, 3)) <=
            0.5 * step * (1 + 1e-4) + slack).all()
    ref = (F.conv2d(pixels, rounded, bias.double(), stride, padding) -
           F.conv2d(m.expand_as(x), rounded, None, stride, padding))
    out = stem(x)
    assert out.shape == ref.shape
    assert (out.double() - ref).abs().max() <= 1e-5 * ref.abs().max()
    exact = F.conv2d(x.double(), weight.double(), bias.double(), stride,
                     padding)
    assert not torch.equal(out.double(), exact)  # it is an approximation
    # the error is the rounding's on the centred pixels: no term in the
    # mean (a correction with the unrounded weights would leave one)
    bound = F.conv2d((pixels - m).abs(), (rounded - folded).abs(), None,
                     stride, padding)
    assert ((out.double() - exact).abs() <= bound * (1 + 1e-4) +
            1e-5 * exact.abs().max()).all()


def test_int8_stem_uses_7_bit_weights_without_vnni(monkeypatch):
    """Without VNNI oneDNN sums pairs of uint8 x int8 products in int16,
    which 8-bit weights overflow; a PyTorch without the probe counts as no
    VNNI (7 bits are right everywhere). Bad levels are refused."""
    from mmbireal.deploy import int8_stem
    monkeypatch.setattr(torch.cpu, '_is_vnni_supported', lambda: True,
                        raising=False)
    assert int8_stem.weight_levels() == 127
    monkeypatch.setattr(torch.cpu, '_is_vnni_supported', lambda: False)
    assert int8_stem.weight_levels() == 63
    monkeypatch.delattr(torch.cpu, '_is_vnni_supported')
    assert int8_stem.weight_levels() == 63
    assert 255 * 63 * 2 <= torch.iinfo(torch.int16).max < 255 * 127 * 2
    with pytest.raises(ValueError, match='levels must be in 1-127'):
        int8_stem.Int8Stem(torch.ones(4, 3, 3, 3), torch.zeros(4),
                           [0.0] * 3, [1.0] * 3, 1, 1, levels=128)


def test_int8_stem_and_topk_problems_are_input_errors(monkeypatch):
    """No oneDNN (e.g. on ARM) or a bad topk: one line, no traceback."""
    import types
    packed = pack_classifier(small_fmnist_model())
    # a PyTorch build without oneDNN's quantized conv, as the real Int8Stem
    # probes it
    monkeypatch.setattr(torch.ops, 'onednn', types.SimpleNamespace())
    with pytest.raises(InputError, match=r"stem='int8' cannot serve .*"
                       r"needs PyTorch's oneDNN quantized conv "
                       r'\(torch.ops.onednn\), which this build lacks'):
        PackedBiRealNet(packed, backend='torch', stem='int8')
    model = PackedBiRealNet(packed, backend='torch')
    for topk in (0, -1, 2.5, True):
        with pytest.raises(InputError, match='topk must be a positive int'):
            model.classify([np.zeros((28, 28), np.uint8)], topk=topk)


def test_int8_stem_is_an_explicit_option(tmp_path):
    model = small_fmnist_model()
    packed = pack_classifier(model)
    with pytest.raises(InputError, match="unknown stem 'bf16'; accepted: "
                       'exact, int8'):
        PackedBiRealNet(packed, stem='bf16')
    assert PackedBiRealNet(packed).stem == 'exact'
    if getattr(torch.ops.onednn, 'qconv2d_pointwise', None) is None:
        pytest.skip('no oneDNN quantized conv in this PyTorch')
    x = _random_images(16, 1, 28, packed['meta']['mean'],
                       packed['meta']['std'], 2)
    exact = PackedBiRealNet(packed, backend='torch')
    fast = PackedBiRealNet(packed, backend='torch', stem='int8')
    # only the stem conv differs: the int8 stem's output, then the same
    # pooling, blocks and head as the exact model
    stem_out = fast.int8_stem()(x.contiguous(
        memory_format=torch.channels_last))
    feat = exact.stem_geometry.pool(stem_out, exact.padding)
    feat = feat.permute(0, 2, 3, 1).contiguous()
    for block in exact.blocks:
        feat = block.forward_torch(feat)
    expected = F.linear(feat.mean(dim=(1, 2)), exact.fc_weight,
                        exact.fc_bias)
    assert torch.equal(fast(x), expected)
    assert not torch.equal(fast(x), exact(x))  # the stem is rounded
    if get_engine() is not None:  # the engine runs the same floats
        assert torch.equal(
            PackedBiRealNet(packed, backend='native', stem='int8')(x),
            expected)
    del packed['meta']['mean']
    with pytest.raises(InputError, match=r'needs .* mean/std'):
        PackedBiRealNet(packed, stem='int8')


class _DetachedScaleStrictClip(WeightBinarizer):
    """Not registered: set as an instance. Its forward is scaled_sign's."""

    scaled, strict_clip = True, True


def test_export_asks_the_weight_binarizer_whether_it_is_scaled():
    expected = pack_classifier(small_fmnist_model(**{
        'model.backbone.conv_cfg.weight_binarizer': 'scaled_sign'}))
    model = small_fmnist_model()
    for _, conv in binary_convs(model):
        conv.weight_binarizer = _DetachedScaleStrictClip()
    packed = pack_classifier(model)
    assert packed['weights'].keys() == expected['weights'].keys()
    for key, value in expected['weights'].items():
        assert torch.equal(packed['weights'][key], value), key
    assert packed['meta']['weight_binarizer'] == \
        '_detached_scale_strict_clip'


class _ThresholdSign(WeightBinarizer):
    """Not registered: a forward of its own, sign(W - 0.01)."""

    def binarize(self, w, ops, out=None, alpha=None):
        return super().binarize(w - 0.01, ops, out, alpha)


def test_export_refuses_a_binarizer_with_its_own_forward():
    model = small_fmnist_model()
    for _, conv in binary_convs(model):
        conv.weight_binarizer = _ThresholdSign()
    with pytest.raises(ExportError, match='_ThresholdSign overrides '
                       'binarize'):
        pack_classifier(model)


def test_packed_file_is_weights_only_plain_data(tmp_path):
    model = small_fmnist_model()
    packed = pack_classifier(model)
    assert packed['arch'] == {
        'depth': 18, 'stem_type': 'small', 'in_channels': 1,
        'stem_channels': 16, 'widths': [16, 32, 64, 128],
        'strides': [1, 2, 2, 2], 'blocks': [4, 4, 4, 4],
        'convs_per_shortcut': 1, 'num_classes': 10
    }
    bits = packed['weights']['layer2.0.conv0.bits']
    assert bits.dtype == torch.int64 and bits.shape == (32, 3, 3, 1)
    path = str(tmp_path / 'p.pth')
    export_packed(model, path)
    # plain torch.load in weights-only mode needs no allow-list at all
    loaded = torch.load(path, weights_only=True)
    assert loaded['format'] == packed['format']


@pytest.mark.slow
def test_full_bireal18_export_size_and_logits(tmp_path):
    """The ImageNet-head Bi-Real-18 through the CLI tool: <= 4.3 MB."""
    torch.manual_seed(0)
    model = build_model(IN1K_CFG)
    randomize_bn(model)
    ckpt, out = tmp_path / 'float.pth', tmp_path / 'bireal18.bin.pth'
    torch.save({'state_dict': model.state_dict()}, ckpt)
    proc = run_tool(['tools/deployment/export_binary.py', IN1K_CFG,
                     str(ckpt), str(out)])
    size = osp.getsize(out)
    assert size <= 4.3e6, size
    assert f'{size:,} bytes' in proc.stdout
    assert 'x larger' in proc.stdout
    # a 64 px input keeps this fast; the graph is the same as at 224
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref = model(x, mode='tensor')
    _assert_logits_match(ref, load_packed(str(out))(x))


def test_checkpoint_of_another_model_is_refused_in_one_line(tmp_path):
    ckpt = tmp_path / 'narrow.pth'
    torch.save({'state_dict': small_fmnist_model().state_dict()}, ckpt)
    with pytest.raises(CheckpointError,
                       match=r'does not fit the.*shape mismatch') as info:
        build_model(FMNIST_CFG, str(ckpt))
    assert '\n' not in str(info.value)


def test_export_refuses_real_valued_network():
    torch.manual_seed(0)
    model = build_model(FMNIST_CFG, cfg_options={
        **NARROW, 'model.backbone.conv_cfg': None})
    with pytest.raises(ExportError, match='not a BinaryConv2d'):
        pack_classifier(model)


class _PairBlock(BinaryResBlock):
    """Two binary convs under one shortcut, under other names than
    BinaryBasicBlock's: export must ask the block, not know its class."""

    conv_suffixes = ('_x', '_y')


class _TripleBlock(BinaryResBlock):
    conv_suffixes = ('_x', '_y', '_z')


def _model_with_block(block):

    class Backbone(BiRealNet):

        def make_res_layer(self, **kwargs):
            return super().make_res_layer(**{**kwargs, 'block': block})

    model = small_fmnist_model()
    model.backbone = Backbone(
        18, in_channels=1, stem_type='small', stem_channels=16,
        base_channels=16).eval()
    randomize_bn(model)
    return model


def _assert_packed_matches(model, x):
    packed = PackedBiRealNet(pack_classifier(model))
    with torch.no_grad():
        _assert_logits_match(model(x, mode='tensor'), packed(x))
    return packed


def test_export_walks_any_block_that_lists_its_conv_units():
    model = _model_with_block(_PairBlock)
    packed = _assert_packed_matches(
        model, torch.randn(2, 1, 28, 28,
                           generator=torch.Generator().manual_seed(4)))
    assert packed.arch['convs_per_shortcut'] == 2
    assert packed.arch['blocks'] == [4, 4, 4, 4]
    with pytest.raises(ExportError, match='1 or 2 binary convs.*got blocks '
                       r'of \[3\]'):
        pack_classifier(_model_with_block(_TripleBlock))


def test_a_stem_added_to_the_table_is_built_exported_and_loaded(
        monkeypatch, tmp_path):
    monkeypatch.setitem(STEM_GEOMETRIES, 'test5x5',
                        StemGeometry(5, 1, 2, max_pool=(2, 2, 0),
                                     image_size=16))
    model = small_fmnist_model(**{'model.backbone.stem_type': 'test5x5'})
    assert model.backbone.conv1.kernel_size == (5, 5)
    path = str(tmp_path / 'stem.pth')
    export_packed(model, path)
    packed = load_packed(path)
    assert packed.arch['stem_type'] == 'test5x5'
    x = torch.randn(2, 1, 28, 28, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        _assert_logits_match(model(x, mode='tensor'), packed(x))


# ---------------------------------------------------------------------------
# corrupt and foreign files
# ---------------------------------------------------------------------------
def _one_line_error(path):
    with pytest.raises(CheckpointError) as info:
        load_packed(path)
    assert '\n' not in str(info.value)
    return str(info.value)


def test_corrupt_packed_files_give_one_line_errors(tmp_path):
    model = small_fmnist_model()
    good = tmp_path / 'good.pth'
    export_packed(model, str(good))
    data = good.read_bytes()
    truncated = tmp_path / 'truncated.pth'
    truncated.write_bytes(data[:len(data) // 2])
    assert 'truncated' in _one_line_error(str(truncated))
    garbage = tmp_path / 'garbage.pth'
    garbage.write_bytes(b'\x00not a checkpoint' * 10)
    assert _one_line_error(str(garbage)) == (
        f'cannot read checkpoint {garbage}: truncated or not a torch '
        'checkpoint (UnpicklingError: Weights only load failed)')

    float_ckpt = tmp_path / 'float.pth'
    torch.save({'state_dict': model.state_dict()}, float_ckpt)
    assert 'not a mmbireal-packed-bireal file' in _one_line_error(
        str(float_ckpt))

    packed = pack_classifier(model)
    packed['weights']['layer3.1.conv0.bits'] = torch.zeros(
        64, 3, 3, 2, dtype=torch.int64)
    bad_shape = tmp_path / 'bad_shape.pth'
    torch.save(packed, bad_shape)
    assert 'layer3.1.conv0.bits' in _one_line_error(str(bad_shape))
    packed = pack_classifier(model)
    del packed['weights']['fc.bias']
    with pytest.raises(CheckpointError, match=r"missing 'fc\.bias'"):
        PackedBiRealNet(packed)


@pytest.mark.slow
def test_benchmark_tool_smoke():
    """Tiny settings only: the roofline runs per layer of the network."""
    proc = run_tool(['tools/deployment/benchmark_binary.py', '--iters', '1',
                     '--warmup', '0', '--size', '32', '--batch', '1',
                     '--threads', '1', '--sections', 'roofline'])
    assert re.search(r'measured peak \d+ G binary MAC/s', proc.stdout)
    assert re.search(r'^batch 1: bound at the measured peaks [\d.]+ ms = stem '
                     r'[\d.]+ \+ binary convs [\d.]+ \+ 1x1 downsample '
                     r'[\d.]+; the whole forward takes [\d.]+ ms$',
                     proc.stdout, re.M)
    # the hypervisor's share of our cores during the section (Linux)
    assert re.search(r'^host steal time during this section: \d+\.\d\d s',
                     proc.stdout, re.M)
    assert '7x7x512' not in proc.stdout and '-> 1x1x512' in proc.stdout
    assert 'whole networks' not in proc.stdout


@pytest.mark.slow
def test_benchmark_times_variants_against_the_packed_model():
    react = 'configs/birealnet/bireal18-react_step2_8xb64_in1k.py'
    proc = run_tool(['tools/deployment/benchmark_binary.py', '--iters', '2',
                     '--warmup', '0', '--size', '32', '--batch', '1',
                     '--threads', '1', '--sections', 'packed', '--gap-ms',
                     '0', '--variants', react])
    out = proc.stdout
    assert re.search(r'^Bi-Real-18 packed 1-bit  .* 1\.00x', out, re.M)
    assert re.search(r'^Bi-Real-18 packed 1-bit: bireal18-react_step2_8xb64'
                     r'_in1k .* \d+\.\d\dx', out, re.M), out
    # the paper's top-1 is Bi-Real-18's, not the variant's
    assert re.search(r'^Bi-Real-18 packed 1-bit  .* 56\.4 *$', out, re.M)
    assert re.search(r'^Bi-Real-18 packed 1-bit: .* - *$', out, re.M), out
    assert 'ResNet-18' not in out  # no peers in this section


@pytest.mark.slow
@pytest.mark.parametrize('variant, expected', [
    ('configs/birealnet/bireal18_clip-pre_8xb32_in1k.py',
     'not a BinaryConv2d'),
    ('configs/birealnet/bireal18_1xb64_fmnist.py',
     'the model takes 1-channel images; the benchmark times every runtime '
     'on 3-channel images'),
])
def test_benchmark_refuses_a_model_it_cannot_time_in_one_line(variant,
                                                              expected):
    proc = run_tool(['tools/deployment/benchmark_binary.py', '--iters', '1',
                     '--warmup', '0', '--size', '32', '--batch', '1',
                     '--sections', 'packed', '--variants', variant],
                    check=False)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stderr.strip().count('\n') == 0, proc.stderr[-3000:]
    assert proc.stderr.startswith(f'error: {variant}: ')
    assert expected in proc.stderr


def test_benchmark_skips_a_missing_runtime_with_a_note(monkeypatch,
                                                       tmp_path):
    peers = import_deployment_tool('peer_runtimes')
    monkeypatch.setattr(peers, '_runtime', lambda module: None)
    rows, skipped = peers.build_peers(str(tmp_path), 32, 1)
    # eager PyTorch is always there; every other peer is skipped, not faked
    assert [(r.name, r.runtime.split()[0]) for r in rows] == [
        ('ResNet-18 fp32', 'PyTorch')]
    assert len(skipped) == len(peers.PEER_ROWS) - 1
    assert all('is not installed (pip install mmbireal[bench])' in s.reason
               for s in skipped)


@pytest.mark.slow
def test_benchmark_peer_table():
    """Every peer row whose runtime is installed is timed, the others are
    skipped as not installed; the installed fp32 runtimes are checked
    against eager PyTorch."""
    import importlib.util
    proc = run_tool(['tools/deployment/benchmark_binary.py', '--iters', '2',
                     '--warmup', '0', '--size', '32', '--batch', '1',
                     '--threads', '1', '--sections', 'peers'])
    out = proc.stdout
    assert re.search(r'^Bi-Real-18 packed 1-bit .* 1\.00x', out, re.M)
    assert 'NOT measured here' in out and '69.758' in out
    peers = import_deployment_tool('peer_runtimes')
    for _, arch, _, package, what in peers.PEER_ROWS:
        name = {'resnet18': 'ResNet-18', 'mobilenet_v2': 'MobileNetV2'}[arch]
        precision, runtime = what.split(', ')
        timed = re.search(rf'^{name} {precision.split()[0]}.*  '
                          rf'{runtime.split()[-1]}',
                          out, re.M | re.I)
        if package is None or importlib.util.find_spec(package) is not None:
            assert timed, f'{name} {what} is installed but not timed\n{out}'
        else:
            assert f'skipped {name} {what}: {package} is not installed' in \
                out, what
        if precision == 'fp32' and package is not None and timed:
            check = re.search(rf'^check {name} fp32 \({runtime.split()[-1]} '
                              r'.*$', out, re.M | re.I)
            assert check and check.group(0).endswith('(ok)'), what
    for check in re.findall(r'^check .*$', out, re.M):
        assert check.endswith('(ok)'), check


def test_build_model_keeps_the_configs_normalisation():
    # the top-level data_preprocessor is the model's, as in mmengine's
    # Runner; without it inputs would reach the network as raw 0-255
    model = build_model(FMNIST_CFG)
    assert model.data_preprocessor.mean.flatten().tolist() == \
        pytest.approx([72.94])
    assert model.data_preprocessor.std.flatten().tolist() == \
        pytest.approx([90.02])


@pytest.mark.slow
def test_export_tool_verifies_on_the_test_set(fmnist_available, tmp_path):
    model = small_fmnist_model()
    ckpt, out = tmp_path / 'float.pth', tmp_path / 'small.bin.pth'
    torch.save({'state_dict': model.state_dict()}, ckpt)
    options = [f'{k}={v}' for k, v in NARROW.items()]
    command = ['tools/deployment/export_binary.py', FMNIST_CFG, str(ckpt),
               str(out), '--verify-test-set', '--cfg-options', *options,
               'test_dataloader.dataset.indices=64',
               'test_dataloader.num_workers=0']
    quick = run_tool(command).stdout.strip().splitlines()[-1]
    proc = run_tool([*command[:5], '--float64', '--int8-stem', *command[5:]])
    line, int8 = proc.stdout.strip().splitlines()[-1].split('; int8 stem: ')
    # without the options the same line without their figures
    assert quick == re.sub(r' \(float64 [^)]*\)|; against float64.*$', '',
                           line)
    int8_found = re.match(r'top-1 ([\d.]+), (\d+) predictions differ from '
                          r'packed$', int8)
    assert int8_found, int8
    found = re.match(
        r'test set \(64 images, (native|torch) backend\): top-1 '
        r'float-emulated ([\d.]+), packed ([\d.]+) \(float64 float-emulated '
        r'([\d.]+)\); (\d+) predictions differ between float-emulated and '
        r'packed; (\d+) images with a logit difference above 1e-3 of their '
        r'logit range \(largest: [\d.e+-]+\); against float64: '
        r'float-emulated differs on (\d+), packed on (\d+)$', line)
    assert found, line
    top1 = [float(found.group(i)) for i in (2, 3, 4)]
    # the float model's top-1 as computed here, on the same 64 images
    assert top1[0] == pytest.approx(_top1_in_process(model), abs=0.01)
    # the packed model is the float model up to rounding: as in
    # test_export_matches_float_model, at most one image apart
    differ, off = int(found.group(5)), int(found.group(6))
    assert differ <= 1 and off <= 1, line
    assert abs(top1[0] - top1[1]) <= 100 * differ / 64 + 1e-6
    assert abs(top1[0] - top1[2]) <= 100 * int(found.group(7)) / 64 + 1e-6
    # the int8 stem's rounding moves a few predictions of this random
    # network, not most of them
    assert int(int8_found.group(2)) <= 8, int8
    assert abs(float(int8_found.group(1)) - top1[1]) <= \
        100 * int(int8_found.group(2)) / 64 + 1e-6


def _top1_in_process(model) -> float:
    """Top-1 of ``model`` on the first 64 test images of FMNIST_CFG."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmengine.runner import Runner
    cfg = Config.fromfile(FMNIST_CFG)
    cfg.merge_from_dict({'test_dataloader.dataset.indices': 64,
                         'test_dataloader.num_workers': 0})
    init_default_scope('mmpretrain')
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for batch in Runner.build_dataloader(cfg.test_dataloader):
            data = model.data_preprocessor(batch, False)
            labels = torch.cat([s.gt_label for s in data['data_samples']])
            pred = model(data['inputs'], mode='tensor').argmax(1)
            correct += int((pred == labels).sum())
            total += len(labels)
    assert total == 64
    return 100 * correct / total
