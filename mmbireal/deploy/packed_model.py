"""The inference-only Bi-Real Net rebuilt from a packed file.

Between the stem and the head, activations stay in NHWC: the real-valued
ones as float32 ``(N, H, W, C)``, their signs as int64 words
``(N, H, W, ceil(C / 64))``. Each binary conv then takes the packed signs,
returns ``BN(conv) + shortcut`` in float and, in the same pass, the packed
signs of that sum, which is exactly the next conv's input. The stem conv
(BN folded in) and the fc run in PyTorch; with the engine, the stem's
max-pool, the 1x1 downsample convs (BN folded in) and the binary convs run
in one native call.

Two backends compute identical floats: ``'native'`` (the compiled engine)
and ``'torch'`` (the reference path, +-1 floats through ``F.conv2d``).
"""
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmbireal.models.backbones.bireal_net import STEM_GEOMETRIES
from mmbireal.models.padding import check_padding
from mmbireal.utils import CheckpointError, InputError, load_checkpoint_file
from mmbireal.utils.model_zoo import shipped_weights_file

from .engine import (
    BlockSpec,
    Conv3x3Plan,
    NativeEngine,
    NetworkPlan,
    check_backend,
    engine_weight_layout,
    get_engine,
)
from .file_format import (
    BLOCK_ACTS,
    FORMAT,
    PREPROCESS_KEYS,
    VERSIONS,
    block_act_key,
    conv_key,
    downsample_key,
)
from .images import ImageInput, prepare_image
from .int8_stem import Int8Stem
from .reference import (
    affine_epilogue,
    binary_conv3x3_torch,
    downsample_torch,
    num_words,
    pack_signs_torch,
    unpack_signs,
)

STEMS = ('exact', 'int8')


def contents_key(tensors: Sequence[Optional[Tensor]]) -> tuple:
    """What a cache derived from ``tensors`` depends on: each one's memory
    and version. A replaced storage (``share_memory()``, ``.data =``)
    changes the pointer and an in-place write on the tensor itself
    (``load_state_dict``, ``copy_``) bumps the version, so such a cache
    never reads freed memory nor misses those writes. Writes through
    ``.data`` (``t.data.copy_(...)``) bypass the version counter: load new
    contents with ``load_state_dict``."""
    return tuple(None if t is None else (t.data_ptr(), t._version)
                 for t in tensors)


class PackedBinaryConv(nn.Module):
    """One binary 3x3 conv with its folded BN, padded as ``padding`` (the
    backbone's mode) says, and, with ReActNet's RSign, the bias
    ``sign_bias`` its input's signs are taken with (``sign(x + b)``)."""

    def __init__(self, bits: Tensor, scale: Tensor, shift: Tensor,
                 in_channels: int, stride: int,
                 sign_bias: Optional[Tensor] = None,
                 padding: str = 'symmetric') -> None:
        super().__init__()
        # the engine counts every bit of a word, the reference only the
        # channels: bits past them would make the two disagree. On the
        # device of `bits`, e.g. a file loaded with map_location='cuda'.
        channels = pack_signs_torch(
            torch.zeros(in_channels, device=bits.device))
        if bool((bits & ~channels).any()):
            raise InputError(f'bits set past the {in_channels} input '
                             'channels')
        self.in_channels = in_channels
        self.out_channels = bits.shape[0]
        self.stride = stride
        self.padding = padding
        self.register_buffer('bits', bits)
        self.register_buffer('scale', scale)
        self.register_buffer('shift', shift)
        self.sign_bias: Optional[Tensor]
        self.register_buffer('sign_bias', sign_bias)
        # derived from `bits`, rebuilt when it changes (contents_key)
        self._derived: Dict[str, Tuple[tuple, Tensor]] = {}
        self._plan: Optional[Conv3x3Plan] = None
        self._plan_key: Optional[tuple] = None

    def _derive(self, name: str, make) -> Tensor:
        key = contents_key([self.bits])
        cached = self._derived.get(name)
        if cached is None or cached[0] != key:
            cached = self._derived[name] = (key, make())
        return cached[1]

    @property
    def engine_weight(self) -> Tensor:
        """``bits`` in the engine's weight layout."""
        return self._derive('engine', lambda: engine_weight_layout(self.bits))

    def weight_pm1(self) -> Tensor:
        """``(C_out, C_in, 3, 3)`` +-1 floats for the reference path."""
        return self._derive('pm1', lambda: unpack_signs(
            self.bits, self.in_channels).permute(0, 3, 1, 2).contiguous())

    def __getstate__(self) -> dict:
        # a plan holds ctypes pointers: copies and pickles build their own
        return {**super().__getstate__(), '_plan': None, '_plan_key': None,
                '_derived': {}}

    def forward_native(self, engine: NativeEngine, bits: Tensor,
                       residual: Optional[Tensor], want_out: bool,
                       want_bits: bool) -> Tuple[Optional[Tensor],
                                                 Optional[Tensor]]:
        """The conv with the engine on packed input signs.

        Args:
            engine: The compiled engine.
            bits: The input signs, packed NHWC (as ``engine.pack_signs``
                packs them).
            residual: Added after the BN epilogue (the block's shortcut), or
                None.
            want_out: Return the real-valued output.
            want_bits: Return its signs, packed: the next conv's input.

        Returns:
            tuple: ``(out, bits)``, each None where not wanted.
        """
        # the plan holds raw pointers: rebuilt when a buffer changes
        key = (engine, contents_key([self.bits, self.scale, self.shift]))
        if self._plan_key != key:
            self._plan = engine.plan_conv3x3(
                self.in_channels, self.engine_weight, self.out_channels,
                self.stride, self.scale, self.shift, padding=self.padding)
            self._plan_key = key
        out = self._plan(bits, residual, want_out=want_out,
                         want_bits=want_bits)
        return out.out, out.bits

    def forward_torch(self, x: Tensor, residual: Optional[Tensor],
                      block_act: Optional[Tuple[Tensor, Tensor,
                                                Tensor]] = None) -> Tensor:
        """The conv on the reference path, the same floats as the engine.

        Args:
            x: The real-valued NHWC input (its signs are the conv's input).
            residual: Added after the BN epilogue, or None.
            block_act: RPReLU's ``(shift_in, slope, shift_out)`` after the
                residual add, or None.

        Returns:
            Tensor: The NHWC output.
        """
        if self.sign_bias is not None:  # as training computes it
            x = x + self.sign_bias
        dots = binary_conv3x3_torch(x, self.weight_pm1(), self.stride,
                                    self.padding)
        return affine_epilogue(dots, self.scale, self.shift, residual,
                               block_act)

    def extra_repr(self) -> str:
        padding = 1 if self.padding == 'symmetric' else repr(self.padding)
        return (f'{self.in_channels}, {self.out_channels}, kernel_size=3, '
                f'stride={self.stride}, padding={padding}, 1-bit')


class PackedBlock(nn.Module):
    """``convs`` (1 or 2 binary convs) under one real-valued shortcut, and
    ReActNet's RPReLU after the residual add if ``block_act = (shift_in,
    slope, shift_out)`` is given."""

    def __init__(self, convs: List[PackedBinaryConv],
                 downsample: Optional[Tuple[Tensor, Tensor]],
                 stride: int,
                 block_act: Optional[Tuple[Tensor, Tensor,
                                           Tensor]] = None) -> None:
        super().__init__()
        self.convs = nn.ModuleList(convs)
        self.stride = stride
        self.has_downsample = downsample is not None
        if downsample is not None:
            self.register_buffer('down_weight', downsample[0])
            self.register_buffer('down_bias', downsample[1])
        self.has_block_act = block_act is not None
        if block_act is not None:
            for name, t in zip(BLOCK_ACTS['rprelu'], block_act):
                self.register_buffer(f'act_{name}', t)

    def block_act(self) -> Optional[Tuple[Tensor, Tensor, Tensor]]:
        """``(shift_in, slope, shift_out)`` of the RPReLU, or None."""
        if not self.has_block_act:
            return None
        return tuple(getattr(self, f'act_{name}')
                     for name in BLOCK_ACTS['rprelu'])

    def shortcut(self, x: Tensor) -> Tensor:
        """Identity, or avg-pool 2x2 (ceil mode) + 1x1 conv + BN, NHWC, in
        the engine's order of operations."""
        if not self.has_downsample:
            return x
        return downsample_torch(x, self.stride, self.down_weight,
                                self.down_bias)

    def spec(self) -> BlockSpec:
        """This block for :meth:`NativeEngine.plan_network`."""
        return BlockSpec(
            self.convs[0].in_channels, self.convs[-1].out_channels,
            self.stride,
            [(c.engine_weight, c.scale, c.shift) for c in self.convs],
            (self.down_weight, self.down_bias) if self.has_downsample else
            None, [c.sign_bias for c in self.convs], self.block_act())

    def forward_torch(self, x: Tensor) -> Tensor:
        identity = self.shortcut(x)  # of x itself, not of x + sign_bias
        out = x
        for conv in self.convs[:-1]:
            out = conv.forward_torch(out, None)
        return self.convs[-1].forward_torch(out, identity, self.block_act())


class Prediction(NamedTuple):
    """One of the top-k classes of an image."""
    index: int
    name: Optional[str]  # None if the packed file has no class names
    score: float  # softmax probability


def _check(cond: bool, path: str, what: str) -> None:
    if not cond:
        raise CheckpointError(f'invalid packed Bi-Real file {path}: {what}')


class PackedBiRealNet(nn.Module):
    """Bi-Real Net classifier on 1-bit weights: NCHW float in, logits out;
    :meth:`classify` takes images.

    Args:
        packed: The dict written by :func:`mmbireal.deploy.export_packed`.
        backend: ``'native'`` (compiled engine; error if unavailable),
            ``'torch'`` (reference path) or ``'auto'`` (native when it
            builds, else torch after a one-line warning);
            ``MMBIREAL_DEPLOY_ENGINE=torch`` makes every backend torch.
        source: File name for error messages.
        stem: ``'exact'`` (fp32, the same floats on every backend) or
            ``'int8'`` (:class:`~.int8_stem.Int8Stem`: faster, not
            bit-exact; needs the mean/std of the file's meta and inputs
            that were 8-bit images).

    Raises:
        CheckpointError: ``packed`` is not a valid packed Bi-Real file.
        InputError: an unknown ``backend`` or ``stem``, ``'native'`` where
            the engine cannot be built, or ``stem='int8'``
            for a file without symmetric padding or mean/std; in
            :meth:`forward`, an input of the wrong shape, or an input or
            model that is not on the CPU (the engine is CPU code).

    Example:
        >>> from mmbireal.deploy import load_packed
        >>> model = load_packed('bireal18_fmnist.bin.pth')  # doctest: +SKIP
        >>> model.classify(['shirt.png'], topk=3)[0][0]  # doctest: +SKIP
        Prediction(index=6, name='Shirt', score=0.71)
    """

    def __init__(self, packed: dict, backend: str = 'auto',
                 source: str = '<dict>', stem: str = 'exact') -> None:
        super().__init__()
        check_backend(backend)
        if stem not in STEMS:
            raise InputError(f'unknown stem {stem!r}; accepted: '
                             f'{", ".join(STEMS)}')
        _check(isinstance(packed, dict) and packed.get('format') == FORMAT,
               source, f'not a {FORMAT} file')
        _check(packed.get('version') in VERSIONS, source,
               f'version {packed.get("version")!r}, this code reads '
               f'{", ".join(map(str, VERSIONS))}')
        arch, weights = packed.get('arch'), packed.get('weights')
        _check(isinstance(arch, dict) and isinstance(weights, dict), source,
               'no arch or weights')
        for key in ('depth', 'num_classes'):  # ints the engine does not read
            _check(type(arch.get(key)) is int and arch[key] > 0, source,
                   f'arch {key} {arch.get(key)!r} is not a positive integer')
        try:
            self._build(arch, weights)
        except (KeyError, TypeError, ValueError, RuntimeError) as e:
            what = f'missing {e}' if isinstance(e, KeyError) else str(
                e).splitlines()[0]
            raise CheckpointError(
                f'invalid packed Bi-Real file {source}: {what}') from None
        self.arch = arch
        meta = packed.get('meta')
        self.meta = dict(meta) if isinstance(meta, dict) else {}
        classes, num_classes = self.meta.get('classes'), arch['num_classes']
        if classes is not None:  # classify() indexes it by class
            listed = isinstance(classes, (list, tuple))
            _check(listed and len(classes) == num_classes, source,
                   f'{num_classes} classes, but meta classes holds ' +
                   (f'{len(classes)} names' if listed else
                    type(classes).__name__))
        self.source = source
        self.stem = stem
        self._int8: Optional[Tuple[tuple, Int8Stem]] = None
        if stem == 'int8':
            if self.padding != 'symmetric':
                raise InputError("stem='int8' supports the symmetric padding "
                                 f'only, not {self.padding!r}')
            if 'mean' not in self.meta or 'std' not in self.meta:
                raise InputError("stem='int8' needs the data preprocessor's "
                                 'mean/std in the packed file')
            self.int8_stem()  # built now: its errors come at load time
        self.engine: Optional[NativeEngine] = None
        self._network: Optional[NetworkPlan] = None
        self._network_key: Optional[tuple] = None
        self._buffer_slots: Optional[list] = None
        if backend != 'torch':
            self.engine = get_engine()
        self.eval()

    def int8_stem(self) -> Int8Stem:
        """The :class:`~.int8_stem.Int8Stem` of ``stem_weight`` and
        ``stem_bias``, rebuilt when either changes (replaced, moved or
        written in place, as by ``load_state_dict``; see
        :func:`contents_key`).

        Raises:
            InputError: this PyTorch has no oneDNN quantized conv, or the
                file's mean/std do not fit the stem (one line).
        """
        key = contents_key([self.stem_weight, self.stem_bias])
        if self._int8 is None or self._int8[0] != key:
            try:
                stem = Int8Stem(self.stem_weight, self.stem_bias,
                                self.meta['mean'], self.meta['std'],
                                self.stem_geometry.stride,
                                self.stem_geometry.padding)
            except (RuntimeError, ValueError) as e:  # no oneDNN; mean/std
                raise InputError(f"stem='int8' cannot serve {self.source}: "
                                 f'{e}') from None
            self._int8 = (key, stem)
        return self._int8[1]

    @property
    def backend(self) -> str:
        """``'native'`` or ``'torch'``: the path :meth:`forward` takes."""
        return 'torch' if self.engine is None else 'native'

    def _build(self, arch: dict, weights: Dict[str, Tensor]) -> None:

        def tensor(name: str, shape: tuple, dtype: torch.dtype) -> Tensor:
            t = weights[name]
            if not isinstance(t, Tensor) or t.dtype != dtype or tuple(
                    t.shape) != tuple(shape):
                got = (f'{t.dtype} {tuple(t.shape)}' if isinstance(
                    t, Tensor) else type(t).__name__)
                raise InputError(f'{name} should be {dtype} {tuple(shape)}, '
                                 f'got {got}')
            # a copy: models built from one dict do not share storage
            return t.clone(memory_format=torch.contiguous_format)

        f32 = torch.float32
        self.stem_type = arch['stem_type']
        if self.stem_type not in tuple(STEM_GEOMETRIES):
            raise InputError(f'unknown stem_type {self.stem_type!r}')
        self.stem_geometry = STEM_GEOMETRIES[self.stem_type]
        # files before version 2 have no padding: the symmetric one
        self.padding = check_padding(arch.get('padding', 'symmetric'))
        self.in_channels = int(arch['in_channels'])
        stem = int(arch['stem_channels'])
        k = self.stem_geometry.kernel_size
        w = tensor('stem.weight', (stem, self.in_channels, k, k), f32)
        scale = tensor('stem.scale', (stem, ), f32)
        # Stem BN folded into the conv: one op at the widest resolution.
        self.register_buffer('stem_weight', w * scale.view(-1, 1, 1, 1))
        self.register_buffer('stem_bias', tensor('stem.shift', (stem, ), f32))

        widths, strides, blocks = (list(arch['widths']),
                                   list(arch['strides']),
                                   list(arch['blocks']))
        cps = int(arch['convs_per_shortcut'])
        # ReActNet's parts (version 2 files; absent: none)
        sign_bias = bool(arch.get('sign_bias', False))
        block_act = arch.get('block_act')
        if block_act is not None and block_act not in BLOCK_ACTS:
            raise InputError(f'unknown block_act {block_act!r}')
        if not (len(widths) == len(strides) == len(blocks)) or cps not in (
                1, 2) or any(s not in (1, 2) for s in strides):
            raise InputError('inconsistent widths/strides/blocks')
        layers = []
        channels = stem
        for i, (width, stride, num) in enumerate(zip(widths, strides,
                                                     blocks)):
            for j in range(num):
                block_stride = stride if j == 0 else 1
                convs = []
                cin = channels
                for c in range(cps):
                    convs.append(
                        PackedBinaryConv(
                            tensor(conv_key(i, j, c, 'bits'),
                                   (width, 3, 3, num_words(cin)),
                                   torch.int64),
                            tensor(conv_key(i, j, c, 'scale'), (width, ),
                                   f32),
                            tensor(conv_key(i, j, c, 'shift'), (width, ),
                                   f32), cin, block_stride if c == 0 else 1,
                            tensor(conv_key(i, j, c, 'sign_bias'), (cin, ),
                                   f32) if sign_bias else None,
                            padding=self.padding))
                    cin = width
                downsample = None
                if j == 0 and (stride != 1 or channels != width):
                    dw = tensor(downsample_key(i, j, 'weight'),
                                (width, channels), f32)
                    ds = tensor(downsample_key(i, j, 'scale'), (width, ),
                                f32)
                    downsample = (dw * ds.view(-1, 1),
                                  tensor(downsample_key(i, j, 'shift'),
                                         (width, ), f32))
                act = None if block_act is None else tuple(
                    tensor(block_act_key(i, j, name), (width, ), f32)
                    for name in BLOCK_ACTS[block_act])
                layers.append(
                    PackedBlock(convs, downsample, block_stride, act))
                channels = width
        self.blocks = nn.ModuleList(layers)
        num_classes = int(arch['num_classes'])
        self.register_buffer('fc_weight',
                             tensor('fc.weight', (num_classes, channels),
                                    f32))
        self.register_buffer('fc_bias', tensor('fc.bias', (num_classes, ),
                                                  f32))

    def network_plan(self) -> NetworkPlan:
        """The stem's max-pool and the blocks as one native call, rebuilt
        when a buffer of the blocks changes (the plan reads them, and
        copies derived from them, through raw pointers): replaced,
        moved (``share_memory()``) or written in place
        (``load_state_dict``); see :func:`contents_key`."""
        if self._buffer_slots is None:  # looked up by name: replaceable
            self._buffer_slots = [(m._buffers, name)
                                  for m in self.blocks.modules()
                                  for name, t in m._buffers.items()
                                  if t is not None]
        current = [buffers[name] for buffers, name in self._buffer_slots]
        # contents_key's pointers and versions, as two flat lists: this
        # runs on every forward (about 20 us for Bi-Real-18's 118 buffers)
        key = (self.engine, [t.data_ptr() for t in current],
               [t._version for t in current])
        if self._network is None or self._network_key != key:
            self._network = self.engine.plan_network(
                [block.spec() for block in self.blocks],
                padding=self.padding,
                input_pool=self.stem_geometry.max_pool)
            self._network_key = key
        return self._network

    def __getstate__(self) -> dict:
        # the engine and its plan are ctypes objects: a copy or a pickle
        # takes the backend's name and gets the engine again; the int8
        # stem (oneDNN's packed weights) is built again from its buffers
        state = super().__getstate__()
        state.update(engine=None, _network=None, _network_key=None,
                     _buffer_slots=None, _int8=None,
                     _native=self.engine is not None)
        return state

    def __setstate__(self, state: dict) -> None:
        native = state.pop('_native', False)
        super().__setstate__(state)
        if native:
            self.engine = get_engine()

    @torch.no_grad()
    def forward(self, x: Tensor) -> Tensor:
        """Logits ``(N, num_classes)`` of an NCHW float batch."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise InputError(f'expected input (N, {self.in_channels}, H, W), '
                             f'got {tuple(x.shape)}')
        devices = {x.device.type, self.fc_weight.device.type}
        if devices != {'cpu'}:
            # the engine reads raw CPU pointers; a GPU one would crash it
            raise InputError(
                'the packed model runs on the CPU only; got the input on '
                f'{x.device} and the model on {self.fc_weight.device}: keep '
                "the model on the CPU (no .cuda() / .to('cuda')) and pass "
                'x.cpu()')
        # channels_last: PyTorch's CPU conv and max-pool kernels are several
        # times faster on it than on NCHW (stem 0.9 vs 6.4 ms at batch 1
        # here), and its memory is already the NHWC the blocks use
        x = x.float().contiguous(memory_format=torch.channels_last)
        if self.stem == 'int8':  # opt-in, not bit-exact
            x = self.int8_stem()(x)
        else:
            x = self.stem_geometry.conv(x, self.stem_weight, self.stem_bias,
                                        self.padding)
        if self.engine is None:
            x = self.stem_geometry.pool(x, self.padding)
            x = x.permute(0, 2, 3, 1).contiguous()  # NHWC from here on
            for block in self.blocks:
                x = block.forward_torch(x)
        else:  # the engine max-pools the stem's output itself
            x = self.network_plan()(x.permute(0, 2, 3, 1).contiguous())
        return F.linear(x.mean(dim=(1, 2)), self.fc_weight, self.fc_bias)

    @property
    def classes(self) -> Optional[List[str]]:
        """The class names stored in the file, or None."""
        return self.meta.get('classes')

    def preprocess(self, images: Sequence[ImageInput]) -> Tensor:
        """The normalised NCHW batch :meth:`forward` takes for ``images``
        (file paths, or uint8 ``H x W`` / ``H x W x C`` BGR arrays), as the
        config's test pipeline and data preprocessor prepare them (see
        :mod:`mmbireal.deploy.images`).

        Raises:
            InputError: the file has no preprocessing (written before it was
                stored, without a config, or from a test pipeline this does
                not reproduce), or an unreadable image.
            FileNotFoundError: an image path that does not exist.
        """
        missing = [k for k in PREPROCESS_KEYS if self.meta.get(k) is None]
        if self.meta.get('unreplayed_step'):
            raise InputError(
                f'{self.source} takes normalised tensors only: its config\'s '
                f'test pipeline has {self.meta["unreplayed_step"]}, which '
                'classify() does not reproduce (it does ResizeEdge + '
                'CenterCrop, or Resize, OpenCV bilinear)')
        if missing:
            raise InputError(
                f'{self.source} does not record the preprocessing images '
                f'need ({", ".join(missing)}): export it again with '
                'tools/deployment/export_binary.py, or pass normalised '
                'tensors to the model')
        if isinstance(images, (str, np.ndarray)):
            raise InputError('images must be a list of image paths or '
                             'arrays, got one ' + ('path' if isinstance(
                                 images, str) else 'array') + ': wrap it '
                             'in a list')
        if len(images) == 0:
            raise InputError('images is empty: give at least one image')
        meta = self.meta
        return torch.stack([
            prepare_image(image, self.in_channels, bool(meta.get('to_rgb')),
                          meta.get('resize_short'), meta['crop_size'],
                          meta['mean'], meta['std']) for image in images
        ])

    def classify(self, images: Sequence[ImageInput],
                 topk: int = 5) -> List[List[Prediction]]:
        """The ``topk`` classes of each image, best first.

        Args:
            images (Sequence[str | np.ndarray]): Image file paths or uint8
                ``H x W`` / ``H x W x C`` (BGR) arrays.
            topk (int): Classes per image (at most ``num_classes``).
                Defaults to 5.

        Returns:
            list[list[Prediction]]: Per image, ``(index, name, score)``
            with the softmax score; ``name`` is None if the file stores no
            class names.

        Raises:
            InputError: ``topk`` below 1, or as :meth:`preprocess`.
        """
        if isinstance(topk, bool) or not isinstance(topk, int) or topk < 1:
            raise InputError(f'topk must be a positive int, got {topk!r}')
        scores = self(self.preprocess(images)).softmax(dim=1)
        top = scores.topk(min(int(topk), scores.shape[1]), dim=1)
        classes = self.classes
        return [[
            Prediction(int(i), classes[int(i)] if classes else None,
                       float(p)) for p, i in zip(values, indices)
        ] for values, indices in zip(top.values, top.indices)]


def load_packed(path: str, backend: str = 'auto',
                stem: str = 'exact') -> PackedBiRealNet:
    """Load a packed Bi-Real file (weights-only) as an inference module.

    Args:
        path (str): A file written by :func:`export_packed`, or the name of
            a model-zoo entry that ships one
            (``'bireal18-rsign-rprelu_step2_1xb64_fmnist'``).
        backend (str): ``'auto'``, ``'native'`` or ``'torch'`` (see
            :class:`PackedBiRealNet`). Defaults to ``'auto'``.
        stem (str): ``'exact'`` or ``'int8'`` (see
            :class:`PackedBiRealNet`). Defaults to ``'exact'``.

    Returns:
        PackedBiRealNet: The model, on the CPU.

    Raises:
        FileNotFoundError: ``path`` is neither a file nor a model-zoo name.
        CheckpointError: a corrupt, truncated or foreign file (one line).
        InputError: an unknown ``backend`` or ``stem``; ``'native'`` where
            the engine cannot be built; ``stem='int8'`` where it cannot
            serve the file (no oneDNN quantized conv in this PyTorch, a
            padding other than the symmetric one, no mean/std).
    """
    path = shipped_weights_file(path)  # a model-zoo name?
    packed = load_checkpoint_file(path, map_location='cpu')
    return PackedBiRealNet(packed, backend=backend, source=path, stem=stem)
