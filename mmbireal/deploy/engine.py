"""The compiled 1-bit convolution engine: built on first use, then cached.

``csrc/binconv.cpp`` is compiled with the system C++ compiler
(``g++ -O3 -march=native -fopenmp -ffp-contract=off``) into a shared
library under ``~/.cache/mmbireal/deploy/`` and called through ctypes on
contiguous tensors' data pointers. How it is built, cached and
loaded is :mod:`mmbireal.utils.native`'s business.

A default install needs no compiler: if the build fails
:func:`get_engine` returns None after a one-line warning (with
``MMBIREAL_DEPLOY_ENGINE=torch`` set, None without one), and callers use
the PyTorch reference path, which computes the same integers and the same
floats.
"""
import ctypes
import glob
import os.path as osp
import threading
import time
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import torch
from torch import Tensor

from mmbireal.utils import native

from .reference import engine_pads, max_pool_geometry, num_words

ABI_VERSION = 5
CSRC = osp.join(osp.dirname(osp.abspath(__file__)), 'csrc')
SOURCE = osp.join(CSRC, 'binconv.cpp')  # includes the csrc/*.h
SIMD_CODES = {'auto': 0, 'scalar': 1, 'avx2': 2, 'avx512': 3}
SIMD_NAMES = {1: 'scalar', 2: 'avx2', 3: 'avx512'}
LANES = 8  # output channels per weight group (csrc: kLanes)

_c_ptr = ctypes.c_void_p
_c_i64 = ctypes.c_int64


# the engine's build errors are those of any native library
EngineBuildError = native.NativeBuildError


class ConvOutput(NamedTuple):
    """What :meth:`NativeEngine.conv3x3` produced (None: not requested)."""
    out: Optional[Tensor]  # (N, Ho, Wo, Cout) float32
    dot: Optional[Tensor]  # (N, Ho, Wo, Cout) int32
    bits: Optional[Tensor]  # (N, Ho, Wo, ceil(Cout / 64)) int64


def cache_dir() -> str:
    """Where compiled engines are kept (``$MMBIREAL_CACHE_DIR/deploy``,
    default ``~/.cache/mmbireal/deploy``)."""
    return native.cache_dir('deploy')


def build_engine(cxx: Optional[str] = None,
                 directory: Optional[str] = None) -> 'NativeEngine':
    """Compile (or reuse) the engine library and load it.

    Args:
        cxx: The C++ compiler; default ``$CXX`` or ``g++``.
        directory: Cache directory; default :func:`cache_dir`.

    Raises:
        EngineBuildError: no compiler, a failed build or a library that
            does not load.
    """
    lib, path, flags = native.build_library(
        SOURCE, ABI_VERSION, directory or cache_dir(), cxx,
        depends=sorted(glob.glob(osp.join(CSRC, '*.h'))))
    return NativeEngine(lib, path, flags)


class NativeEngine:
    """ctypes binding of one compiled engine library."""

    def __init__(self, lib: ctypes.CDLL, path: str,
                 flags: List[str]) -> None:
        lib.mmb_best_simd.restype = ctypes.c_int
        lib.mmb_pack_signs.restype = None
        lib.mmb_pack_signs.argtypes = [
            _c_ptr, _c_i64, _c_i64, _c_ptr, ctypes.c_int
        ]
        lib.mmb_conv3x3.restype = ctypes.c_int
        lib.mmb_conv3x3.argtypes = [
            _c_ptr, _c_i64, _c_i64, _c_i64, _c_i64, _c_ptr, _c_i64, _c_i64,
            _c_i64, _c_i64, _c_ptr, _c_ptr, _c_ptr, _c_ptr, _c_ptr, _c_ptr,
            ctypes.c_int, ctypes.c_int
        ]
        lib.mmb_forward.restype = ctypes.c_int
        lib.mmb_forward.argtypes = [
            _c_ptr, _c_i64, _c_i64, _c_i64, _c_i64, _c_ptr, _c_ptr, _c_i64,
            _c_ptr, _c_ptr, _c_ptr, _c_ptr, _c_ptr, _c_ptr, _c_ptr,
            ctypes.c_int, ctypes.c_int
        ]
        lib.mmb_peak_rate.restype = ctypes.c_double
        lib.mmb_peak_rate.argtypes = [
            ctypes.c_int, ctypes.c_int, _c_i64, ctypes.c_int
        ]
        self.lib = lib
        self.path = path
        self.flags = flags
        self.best_simd = SIMD_NAMES[lib.mmb_best_simd()]

    def supported_simd(self) -> List[str]:
        """The SIMD paths this CPU can run, slowest first."""
        best = SIMD_CODES[self.best_simd]
        return [SIMD_NAMES[c] for c in range(1, best + 1)]

    def peak_rate(self, kind: str, threads: int,
                  seconds: float = 0.2) -> float:
        """Measured peak MACs per second of this CPU at the engine's best
        SIMD level on ``threads`` threads: ``kind='binary'`` counts one MAC
        per bit of XOR + popcount + accumulate, ``'fp32'`` one per lane of a
        fused multiply-add. Runs for about ``seconds``; best of three.
        """
        code = {'binary': 0, 'fp32': 1}[kind]
        iters = 1 << 10
        while True:  # grow until one run takes a measurable time
            start = time.perf_counter()
            rate = self.lib.mmb_peak_rate(code, 0, iters, threads)
            if time.perf_counter() - start >= seconds / 3:
                break
            iters *= 4
        return max(rate, *(self.lib.mmb_peak_rate(code, 0, iters, threads)
                           for _ in range(2)))

    def pack_signs(self, x: Tensor) -> Tensor:
        """Pack ``not x < 0`` (NaN: +1, as training signs it) along the last
        dim (float32) into int64 words."""
        if x.dtype != torch.float32 or x.device.type != 'cpu':
            raise TypeError('pack_signs expects a float32 CPU tensor')
        x = x.contiguous()
        channels = x.shape[-1]
        out = torch.empty(*x.shape[:-1], num_words(channels),
                          dtype=torch.int64)
        rows = x.numel() // channels if channels else 0
        if rows:
            self.lib.mmb_pack_signs(x.data_ptr(), rows, channels,
                                    out.data_ptr(), torch.get_num_threads())
        return out

    def plan_network(
            self,
            blocks: Sequence['BlockSpec'],
            simd: str = 'auto',
            padding: str = 'symmetric',
            input_pool: Optional[Tuple[int, int, int]] = None
    ) -> 'NetworkPlan':
        """All ``blocks`` as one native call (see :class:`NetworkPlan`)."""
        return NetworkPlan(self, blocks, simd, padding, input_pool)

    def plan_conv3x3(self,
                     channels: int,
                     weight: Tensor,
                     out_channels: int,
                     stride: int,
                     scale: Optional[Tensor] = None,
                     shift: Optional[Tensor] = None,
                     simd: str = 'auto',
                     padding: str = 'symmetric') -> 'Conv3x3Plan':
        """A binary 3x3 conv with its weights checked once, to call many
        times (see :meth:`conv3x3` for the arguments)."""
        return Conv3x3Plan(self, channels, weight, out_channels, stride,
                           scale, shift, simd, padding)

    def conv3x3(self,
                act_bits: Tensor,
                channels: int,
                weight: Tensor,
                out_channels: int,
                stride: int,
                scale: Optional[Tensor] = None,
                shift: Optional[Tensor] = None,
                residual: Optional[Tensor] = None,
                want_out: bool = True,
                want_dot: bool = False,
                want_bits: bool = False,
                simd: str = 'auto',
                padding: str = 'symmetric') -> ConvOutput:
        """Binary 3x3 convolution on packed NHWC activations.

        Args:
            act_bits: ``(N, H, W, ceil(C / 64))`` int64 from
                :meth:`pack_signs`.
            channels: ``C``, the number of real input channels.
            weight: engine layout from :func:`engine_weight_layout`.
            out_channels: ``C_out``.
            stride: 1 or 2.
            scale, shift: per-channel float32 ``(C_out,)`` affine applied
                to the integer dot products (the folded BN).
            residual: ``(N, H_out, W_out, C_out)`` float32 added last.
            want_out, want_dot, want_bits: which outputs to produce: the
                float result, the raw int32 dot products, the packed signs
                of the float result (the next binary conv's input).
            simd: ``'auto'``, ``'scalar'``, ``'avx2'`` or ``'avx512'``.
            padding: The backbone's padding mode: ``'symmetric'`` (1 on
                every side) or ``'tf_same'`` (:func:`~.reference.
                conv3x3_pads`).
        """
        plan = self.plan_conv3x3(channels, weight, out_channels, stride,
                                 scale, shift, simd, padding)
        return plan(act_bits, residual, want_out, want_dot, want_bits)


class _BlockDesc(ctypes.Structure):
    """csrc/network.h: BlockDesc."""
    _fields_ = [('cin', _c_i64), ('cout', _c_i64), ('stride', _c_i64),
                ('nconv', _c_i64), ('pad_t', _c_i64 * 2),
                ('pad_l', _c_i64 * 2), ('wgt', _c_ptr * 2),
                ('scale', _c_ptr * 2),
                ('shift', _c_ptr * 2), ('down_wt', _c_ptr),
                ('down_bias', _c_ptr), ('thr', _c_ptr * 2),
                ('act_b1', _c_ptr), ('act_slope', _c_ptr),
                ('act_b2', _c_ptr)]


class BlockSpec(NamedTuple):
    """One block for :class:`NetworkPlan`.

    ``convs``: one or two ``(engine weight, scale, shift)``, the first with
    ``stride``; ``downsample``: None (identity shortcut) or the folded 1x1
    ``(weight (C_out, C_in), bias (C_out,))`` after an avg-pool of
    ``stride``. ReActNet's parts (None: absent): ``sign_biases``, per conv
    the RSign bias of its input (None or ``(C_in,)``), and ``block_act``,
    the RPReLU after the residual add, ``(shift_in, slope, shift_out)``.
    """
    in_channels: int
    out_channels: int
    stride: int
    convs: Sequence[Tuple[Tensor, Tensor, Tensor]]
    downsample: Optional[Tuple[Tensor, Tensor]]
    sign_biases: Optional[Sequence[Optional[Tensor]]] = None
    block_act: Optional[Tuple[Tensor, Tensor, Tensor]] = None


class NetworkPlan:
    """All binary blocks of a network as one native call (``mmb_forward``):
    one thread team for the whole stack, the downsample shortcuts inside
    the engine, scratch buffers kept per input shape.

    Computes the same floats as :func:`~.reference.downsample_torch` and
    the reference convs block by block. Calls are serialised (the scratch
    buffers are shared). ``padding`` is the backbone's padding mode; each
    conv's zeros before its input are set for the input size of a call.
    ``input_pool``: the stem's max-pool ``(kernel, stride, padding)``, run
    first on the input (as PyTorch's ``max_pool2d``, bit for bit), fused
    with the packing of its signs; None: the input is the first block's.
    """

    def __init__(self,
                 engine: NativeEngine,
                 blocks: Sequence[BlockSpec],
                 simd: str = 'auto',
                 padding: str = 'symmetric',
                 input_pool: Optional[Tuple[int, int, int]] = None) -> None:
        if not blocks:
            raise ValueError('a network needs at least one block')
        if simd not in SIMD_CODES:
            raise ValueError(f'unknown simd {simd!r}; accepted: '
                             f'{", ".join(SIMD_CODES)}')
        self.engine, self.simd, self.padding = engine, simd, padding
        engine_pads(padding, 1, 1, 1)  # checks the mode
        self.input_pool = None if input_pool is None else tuple(input_pool)
        self.blocks = list(blocks)
        self._keep: List[Tensor] = []  # the library reads them by pointer
        self._pads_for: Optional[Tuple[int, int]] = None
        descs = (_BlockDesc * len(blocks))()
        for i, (d, b) in enumerate(zip(descs, self.blocks)):
            if len(b.convs) not in (1, 2) or b.stride not in (1, 2):
                raise ValueError('blocks have 1 or 2 convs, stride 1 or 2')
            # the engine trusts the shapes: a mismatch would read past
            # its buffers
            if i and b.in_channels != self.blocks[i - 1].out_channels:
                raise ValueError(f'block {i} takes {b.in_channels} '
                                 'channels, the block before gives '
                                 f'{self.blocks[i - 1].out_channels}')
            reshapes = b.stride != 1 or b.in_channels != b.out_channels
            if reshapes != (b.downsample is not None):
                raise ValueError(
                    f'block {i} needs a downsample shortcut exactly when '
                    'its stride or channel count changes')
            cin = b.in_channels
            for k, (weight, scale, shift) in enumerate(b.convs):
                # checks the layout as a single conv would
                plan = Conv3x3Plan(engine, cin, weight, b.out_channels, 1,
                                   scale, shift)
                self._keep += [plan.weight, plan.scale, plan.shift]
                d.wgt[k], d.scale[k], d.shift[k] = (
                    t.data_ptr() for t in (plan.weight, plan.scale,
                                           plan.shift))
                cin = b.out_channels
            d.cin, d.cout, d.stride, d.nconv = (b.in_channels,
                                                b.out_channels, b.stride,
                                                len(b.convs))
            if b.downsample is not None:
                wt = _check_float(b.downsample[0],
                                  (b.out_channels, b.in_channels))
                wt = wt.t().contiguous()  # (C_in, C_out): C_out innermost
                bias = _check_float(b.downsample[1], (b.out_channels, ))
                self._keep += [wt, bias]
                d.down_wt, d.down_bias = wt.data_ptr(), bias.data_ptr()
            cin = b.in_channels
            for k, bias in enumerate(b.sign_biases or ()):
                if bias is not None:
                    # sign(x + b) is the bit x >= -b (see reference.py)
                    thr = -_check_float(bias, (cin, ))
                    self._keep.append(thr)
                    d.thr[k] = thr.data_ptr()
                cin = b.out_channels
            if b.block_act is not None:
                act = [_check_float(t, (b.out_channels, ))
                       for t in b.block_act]
                self._keep += act
                d.act_b1, d.act_slope, d.act_b2 = (t.data_ptr() for t in act)
        self._descs = descs
        self._lock = threading.Lock()
        self._scratch: Dict[tuple, List[Tensor]] = {}

    def _pool(self, h: int, w: int) -> Optional[Tuple[int, ...]]:
        """The engine's PoolDesc for an ``h`` x ``w`` input, or None."""
        if self.input_pool is None:
            return None
        return max_pool_geometry(self.padding, h, w, self.input_pool)

    def _buffers(self, n: int, h: int, w: int) -> List[Tensor]:
        key = (n, h, w)
        if key not in self._scratch:
            feat = ident = pooled = 1
            pool = self._pool(h, w)
            if pool is not None:  # the pooled map goes to feat0
                h, w = pool[4:]
                feat = n * h * w * self.blocks[0].in_channels
            words = n * h * w * num_words(self.blocks[0].in_channels)
            for b in self.blocks:
                ho, wo = (h - 1) // b.stride + 1, (w - 1) // b.stride + 1
                out = n * ho * wo * b.out_channels
                feat = max(feat, out)
                words = max(words, n * ho * wo * num_words(b.out_channels),
                            n * h * w * num_words(b.in_channels))
                if b.downsample is not None:
                    ident = max(ident, out)
                    pooled = max(pooled, n * ho * wo * b.in_channels)
                h, w = ho, wo
            f32 = torch.float32
            self._scratch = {key: [  # one shape at a time is kept
                torch.empty(feat, dtype=f32), torch.empty(feat, dtype=f32),
                torch.empty(ident, dtype=f32),
                torch.empty(pooled, dtype=f32),
                torch.empty(words, dtype=torch.int64),
                torch.empty(words, dtype=torch.int64)
            ]}
        return self._scratch[key]

    def _set_pads(self, h: int, w: int) -> None:
        """Each conv's zeros before its input for an ``h`` x ``w`` input."""
        if self._pads_for == (h, w):
            return
        self._pads_for = (h, w)
        for d, b in zip(self._descs, self.blocks):
            stride = b.stride
            for k in range(len(b.convs)):
                d.pad_t[k], d.pad_l[k] = engine_pads(self.padding, h, w,
                                                     stride)
                h, w = (h - 1) // stride + 1, (w - 1) // stride + 1
                stride = 1

    def out_shape(self, n: int, h: int, w: int) -> Tuple[int, int, int, int]:
        """The last block's output shape for an ``(n, h, w, C)`` input."""
        pool = self._pool(h, w)
        if pool is not None:
            h, w = pool[4:]
        for b in self.blocks:
            h, w = (h - 1) // b.stride + 1, (w - 1) // b.stride + 1
        return n, h, w, self.blocks[-1].out_channels

    def __call__(self, x: Tensor) -> Tensor:
        """``(N, H, W, C_in)`` float32 (the stem's output, before its
        max-pool if there is ``input_pool``) -> the last block's
        ``(N, H', W', C_out)``."""
        c = self.blocks[0].in_channels
        if x.dtype != torch.float32 or x.dim() != 4 or x.shape[3] != c or \
                x.device.type != 'cpu':
            raise ValueError(f'expected float32 (N, H, W, {c}) on the CPU, '
                             f'got {x.dtype} {tuple(x.shape)} on {x.device}')
        x = x.contiguous()
        n, h, w, _ = x.shape
        out = torch.empty(self.out_shape(n, h, w), dtype=torch.float32)
        if out.numel() == 0:
            return out
        pool = self._pool(h, w)
        with self._lock:
            buffers = self._buffers(n, h, w)
            self._set_pads(*((h, w) if pool is None else pool[4:]))
            ret = self.engine.lib.mmb_forward(
                x.data_ptr(), n, h, w, c,
                None if pool is None else (_c_i64 * 6)(*pool), self._descs,
                len(self.blocks),
                *(t.data_ptr() for t in buffers), out.data_ptr(),
                SIMD_CODES[self.simd], torch.get_num_threads())
        if ret != 0:
            raise RuntimeError(
                f'binary conv engine refused simd={self.simd!r} (this CPU '
                f'runs up to {self.engine.best_simd})')
        return out


def _check_float(t: Optional[Tensor], size: tuple) -> Optional[Tensor]:
    if t is None:
        return None
    if t.dtype != torch.float32 or tuple(t.shape) != size or \
            t.device.type != 'cpu':
        raise ValueError(f'expected float32 {size} on the CPU, got '
                         f'{t.dtype} {tuple(t.shape)} on {t.device}')
    return t.contiguous()


class Conv3x3Plan:
    """One binary 3x3 conv of :class:`NativeEngine` with everything but the
    activations checked and converted once.

    A call then costs a few microseconds of Python besides the kernel,
    which matters at batch 1: the 56x56x64 conv takes about 40 us.
    """

    def __init__(self, engine: NativeEngine, channels: int, weight: Tensor,
                 out_channels: int, stride: int,
                 scale: Optional[Tensor] = None,
                 shift: Optional[Tensor] = None,
                 simd: str = 'auto',
                 padding: str = 'symmetric') -> None:
        cw, groups = num_words(channels), -(-out_channels // LANES)
        engine_pads(padding, 1, 1, 1)  # checks the mode
        if weight.dtype != torch.int64 or tuple(weight.shape) != (
                groups, 9, cw, LANES) or weight.device.type != 'cpu':
            raise ValueError(f'weight must be int64 ({groups}, 9, {cw}, '
                             f'{LANES}) on the CPU, got {weight.dtype} '
                             f'{tuple(weight.shape)} on {weight.device}')
        if stride not in (1, 2):
            raise ValueError(f'stride must be 1 or 2, got {stride}')
        if simd not in SIMD_CODES:
            raise ValueError(f'unknown simd {simd!r}; accepted: '
                             f'{", ".join(SIMD_CODES)}')
        self.engine, self.simd, self.padding = engine, simd, padding
        self.channels, self.out_channels, self.stride = (channels,
                                                         out_channels, stride)
        self.cw, self.out_cw = cw, num_words(out_channels)
        # kept referenced: the library reads them through raw pointers
        self.weight = weight.contiguous()
        self.scale = _check_float(scale, (out_channels, ))
        self.shift = _check_float(shift, (out_channels, ))
        self._weight_ptrs = (self.weight.data_ptr(), out_channels, stride)
        self._affine_ptrs = tuple(None if t is None else t.data_ptr()
                                  for t in (self.scale, self.shift))

    def __call__(self,
                 act_bits: Tensor,
                 residual: Optional[Tensor] = None,
                 want_out: bool = True,
                 want_dot: bool = False,
                 want_bits: bool = False) -> ConvOutput:
        """Run on ``act_bits`` (see :meth:`NativeEngine.conv3x3`)."""
        if act_bits.dtype != torch.int64 or act_bits.dim() != 4 or \
                act_bits.shape[3] != self.cw or act_bits.device.type != 'cpu':
            raise ValueError(f'act_bits must be int64 (N, H, W, {self.cw}) '
                             f'on the CPU, got {act_bits.dtype} '
                             f'{tuple(act_bits.shape)} on {act_bits.device}')
        n, h, w, _ = act_bits.shape
        s = self.stride
        shape = (n, (h - 1) // s + 1, (w - 1) // s + 1, self.out_channels)
        residual = _check_float(residual, shape)
        act_bits = act_bits.contiguous()
        out = torch.empty(shape, dtype=torch.float32) if want_out else None
        dot = torch.empty(shape, dtype=torch.int32) if want_dot else None
        bits = torch.empty(*shape[:3], self.out_cw,
                           dtype=torch.int64) if want_bits else None
        if n * h * w == 0:
            return ConvOutput(out, dot, bits)
        ret = self.engine.lib.mmb_conv3x3(
            act_bits.data_ptr(), n, h, w, self.channels, *self._weight_ptrs,
            *engine_pads(self.padding, h, w, s), *self._affine_ptrs,
            None if residual is None else residual.data_ptr(),
            None if out is None else out.data_ptr(),
            None if dot is None else dot.data_ptr(),
            None if bits is None else bits.data_ptr(), SIMD_CODES[self.simd],
            torch.get_num_threads())
        if ret != 0:
            raise RuntimeError(
                f'binary conv engine refused simd={self.simd!r} (this CPU '
                f'runs up to {self.engine.best_simd})')
        return ConvOutput(out, dot, bits)


def engine_weight_layout(bits: Tensor) -> Tensor:
    """``(C_out, 3, 3, Cw)`` packed weights -> the engine's
    ``(ceil(C_out / 8), 9, Cw, 8)``.

    Eight consecutive output channels sit side by side for each input word,
    so one broadcast activation word meets eight weight words in a single
    vector XOR + popcount. Padded output channels are zero and discarded.
    """
    cout, kh, kw, cw = bits.shape
    if (kh, kw) != (3, 3) or bits.dtype != torch.int64:
        raise ValueError(f'expected int64 (C_out, 3, 3, Cw) bits, got '
                         f'{bits.dtype} {tuple(bits.shape)}')
    groups = -(-cout // LANES)
    padded = bits.new_zeros(groups * LANES, 9, cw)
    padded[:cout] = bits.reshape(cout, 9, cw)
    return padded.reshape(groups, LANES, 9, cw).permute(0, 2, 3,
                                                        1).contiguous()


_engine = native.LazyLibrary(
    lambda: build_engine(), 'MMBIREAL_DEPLOY_ENGINE',
    'mmbireal.deploy: binary conv engine',
    'using the slower PyTorch reference path')


def check_backend(backend: str) -> str:
    """:func:`mmbireal.utils.native.check_backend` for the engine
    (``MMBIREAL_DEPLOY_ENGINE=torch`` overrides)."""
    return native.check_backend(backend, _engine)


def get_engine() -> Optional[NativeEngine]:
    """The engine, compiled on first use; None if it cannot be built
    (after one warning) or ``MMBIREAL_DEPLOY_ENGINE=torch`` is set."""
    return _engine.get()
