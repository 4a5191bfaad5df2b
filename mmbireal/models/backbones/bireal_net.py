"""Bi-Real Net backbone (Liu et al., ECCV 2018) and the plain 1-bit ResNet."""
import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_activation_layer, build_conv_layer, build_norm_layer
from mmengine.model import BaseModule
from mmpretrain.models.backbones.base_backbone import BaseBackbone
from mmpretrain.registry import MODELS
from torch import Tensor
from torch.nn.modules.batchnorm import _BatchNorm

from mmbireal.utils.errors import CheckpointError, InputError

from ..padding import (
    InputPadConv2d,
    InputPadMaxPool2d,
    check_padding,
    pad_input,
    pads_input,
)
from ..react_parts import build_channel_layer


@dataclass(frozen=True)
class StemGeometry:
    """The shape of one stem variant: a real conv, its BN, an optional
    max-pool.

    The backbone builds its stem modules from it and the packed model
    (:mod:`mmbireal.deploy`) runs it functionally with the BN folded into
    the conv; :meth:`build_conv`, :meth:`build_pool`, :meth:`forward` and
    :meth:`pool` are the only places that turn a geometry into ops. Each
    takes the backbone's ``padding`` mode (:mod:`mmbireal.models.padding`):
    ``'symmetric'`` uses the paddings below, ``'tf_same'`` TensorFlow's.

    Args:
        kernel_size (int): Side of the square conv kernel.
        stride (int): Stride of the conv.
        padding (int): Zeros added on every side of the conv's input
            (``'symmetric'`` padding).
        max_pool (tuple[int, int, int], optional): ``(kernel_size, stride,
            padding)`` of the max-pool after the BN; None for no pool.
        image_size (int): Side of the images the variant is meant for (what
            ``tools/deployment/export_binary.py --verify`` feeds).

    Example:
        >>> import torch
        >>> from mmbireal.models.backbones.bireal_net import STEM_GEOMETRIES
        >>> stem = STEM_GEOMETRIES['imagenet']
        >>> conv = stem.build_conv(3, 8)
        >>> x = torch.rand(1, 3, 32, 32)
        >>> tuple(stem.build_pool()(conv(x)).shape)
        (1, 8, 8, 8)
        >>> out = stem.forward(x, conv.weight, None)
        >>> torch.equal(out, stem.build_pool()(conv(x)))
        True
    """

    kernel_size: int
    stride: int
    padding: int
    max_pool: Optional[Tuple[int, int, int]]
    image_size: int

    def build_conv(self, in_channels: int, out_channels: int,
                   padding: str = 'symmetric') -> nn.Conv2d:
        """The stem conv (no bias: the BN after it has one)."""
        if pads_input(padding):
            return InputPadConv2d(in_channels, out_channels,
                                  self.kernel_size, self.stride,
                                  padding=padding, bias=False)
        return nn.Conv2d(
            in_channels,
            out_channels,
            self.kernel_size,
            self.stride,
            self.padding,
            bias=False)

    def build_pool(self, padding: str = 'symmetric') -> nn.Module:
        """The max-pool after the BN, an identity if there is none."""
        if self.max_pool is None:
            return nn.Identity()
        if pads_input(padding):
            return InputPadMaxPool2d(*self.max_pool[:2], padding=padding)
        return nn.MaxPool2d(*self.max_pool)

    def forward(self, x: Tensor, weight: Tensor, bias: Optional[Tensor],
                padding: str = 'symmetric') -> Tensor:
        """The stem as functions: :meth:`conv`, then :meth:`pool`."""
        return self.pool(self.conv(x, weight, bias, padding), padding)

    def conv(self, x: Tensor, weight: Tensor, bias: Optional[Tensor],
             padding: str = 'symmetric') -> Tensor:
        """The conv as a function, ``weight``/``bias`` with a BN folded
        into them."""
        if pads_input(padding):
            x = pad_input(x, padding, self.kernel_size, self.stride)
            return F.conv2d(x, weight, bias, self.stride)
        return F.conv2d(x, weight, bias, self.stride, self.padding)

    def pool(self, x: Tensor, padding: str = 'symmetric') -> Tensor:
        """The max-pool as a function (``x`` itself if there is none)."""
        if self.max_pool is None:
            return x
        if pads_input(padding):
            kernel, stride = self.max_pool[:2]
            x = pad_input(x, padding, kernel, stride, value=float('-inf'))
            return F.max_pool2d(x, kernel, stride)
        return F.max_pool2d(x, *self.max_pool)


#: ``stem_type`` -> its geometry: the one description of the stem variants.
STEM_GEOMETRIES: Dict[str, StemGeometry] = {
    # the paper's: 7x7/2 conv, BN, 3x3/2 max-pool (224 px -> 56 px)
    'imagenet': StemGeometry(7, 2, 3, max_pool=(3, 2, 1), image_size=224),
    # 28-32 px images (Fashion-MNIST, CIFAR): 3x3/1 conv and BN, no pool
    'small': StemGeometry(3, 1, 1, max_pool=None, image_size=28),
}


def _build_act(act_cfg: Optional[dict]) -> nn.Module:
    return nn.Identity() if act_cfg is None else build_activation_layer(
        act_cfg)


class BinaryResBlock(BaseModule):
    """3x3 convs in sequence under one real-valued shortcut.

    Each conv is preceded by ``act`` and followed by a norm:
    ``out = bn(conv(act(out)))`` for every conv in turn, starting from
    ``out = x``, then ``out + shortcut(x)`` (then ``block_act``, if set).
    ``act`` is where sign sits in the binary network; there it is an
    identity, because :class:`BinaryConv2d` binarizes its own input, or
    ReActNet's RSign bias (``sign_bias_cfg``). The first conv takes the
    stride and changes the width.

    Subclasses set :attr:`conv_suffixes`: conv ``k`` lives in the attributes
    ``act{s}``, ``conv{s}`` and ``bn{s}`` with ``s = conv_suffixes[k]``,
    which are also its state-dict keys. :meth:`conv_units` lists them in
    forward order for code that walks the network (export).

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels of every conv.
        stride (int): Stride of the first conv. Defaults to 1.
        downsample (nn.Module, optional): Shortcut branch; identity if None.
        conv_cfg (dict, optional): Config of the 3x3 convs; None builds a
            real ``nn.Conv2d``. Defaults to None.
        norm_cfg (dict): Config of the norm layers.
            Defaults to ``dict(type='BN')``.
        act_cfg (dict, optional): Config of the activation before each conv;
            None is an identity. Defaults to None.
        sign_bias_cfg (dict, optional): A per-channel layer built in the
            place of ``act`` (with ``num_channels``), e.g.
            ``dict(type='LearnableBias')``: ReActNet's RSign, the binary
            conv's sign then sees ``x + b``. Needs ``act_cfg=None``.
            Defaults to None.
        block_act_cfg (dict, optional): A per-channel activation after the
            residual add (attribute ``block_act``), e.g.
            ``dict(type='RPReLU')``; None adds nothing. Defaults to None.
        padding (str): ``'symmetric'`` (1 on every side) or ``'tf_same'``
            (:mod:`mmbireal.models.padding`). Defaults to ``'symmetric'``.
        init_cfg (dict, optional): Initialization config. Defaults to None.
    """

    #: Attribute-name suffixes of the convs, in forward order.
    conv_suffixes: Tuple[str, ...] = ()

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 stride: int = 1,
                 downsample: Optional[nn.Module] = None,
                 conv_cfg: Optional[dict] = None,
                 norm_cfg: dict = dict(type='BN'),
                 act_cfg: Optional[dict] = None,
                 sign_bias_cfg: Optional[dict] = None,
                 block_act_cfg: Optional[dict] = None,
                 padding: str = 'symmetric',
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg)
        if sign_bias_cfg is not None and act_cfg is not None:
            raise InputError('sign_bias_cfg takes the place of act_cfg (the '
                             'bias shifts the input of the binary conv\'s '
                             'sign); set act_cfg=None')
        # BinaryConv2d and InputPadConv2d take the mode as their padding
        if pads_input(padding):
            conv_padding = padding
            if conv_cfg is None:
                conv_cfg = dict(type='InputPadConv2d')
        else:
            conv_padding = 1
        self.padding = padding
        for k, suffix in enumerate(self.conv_suffixes):
            cin = in_channels if k == 0 else out_channels
            act = build_channel_layer(sign_bias_cfg, cin, 'sign_bias_cfg')
            self.add_module(f'act{suffix}',
                            _build_act(act_cfg) if act is None else act)
            self.add_module(
                f'conv{suffix}',
                build_conv_layer(
                    conv_cfg,
                    cin,
                    out_channels,
                    3,
                    stride if k == 0 else 1,
                    padding=conv_padding,
                    bias=False))
            self.add_module(f'bn{suffix}',
                            build_norm_layer(norm_cfg, out_channels)[1])
        self.downsample = downsample
        block_act = build_channel_layer(block_act_cfg, out_channels,
                                        'block_act_cfg')
        if block_act is not None:  # no attribute: off keeps the state dict
            self.block_act = block_act

    def conv_units(self) -> List[Tuple[nn.Module, nn.Module, nn.Module]]:
        """``(act, conv, norm)`` of each 3x3 conv, in forward order.

        In the binary network ``conv`` is a :class:`BinaryConv2d` and ``act``
        an identity (or the RSign bias its input is shifted by); in the
        real-valued pre-training networks the same places hold an
        ``nn.Conv2d`` and the real activation.
        """
        return [(getattr(self, f'act{s}'), getattr(self, f'conv{s}'),
                 getattr(self, f'bn{s}')) for s in self.conv_suffixes]

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = x
        for act, conv, norm in self.conv_units():
            out = norm(conv(act(out)))
        out += identity  # in place: the norm's backward needs its input only
        block_act = getattr(self, 'block_act', None)
        return out if block_act is None else block_act(out)


class BiRealBlock(BinaryResBlock):
    """One 3x3 conv with its own shortcut: ``bn(conv(act(x))) + short(x)``.

    The Bi-Real block: every binary conv's real-valued input is carried
    past it. Arguments are those of :class:`BinaryResBlock`.

    Example:
        >>> import torch
        >>> from mmbireal.models.backbones import BiRealBlock
        >>> block = BiRealBlock(8, 8).eval()
        >>> [type(m).__name__ for m in block.conv_units()[0]]
        ['Identity', 'Conv2d', 'BatchNorm2d']
        >>> tuple(block(torch.rand(1, 8, 5, 5)).shape)
        (1, 8, 5, 5)
    """

    conv_suffixes = ('', )


class BinaryBasicBlock(BinaryResBlock):
    """Two 3x3 convs under one shortcut: the plain 1-bit ResNet block.

    The paper's baseline without Bi-Real's per-conv shortcut:
    ``bn2(conv2(act2(bn1(conv1(act1(x)))))) + short(x)``. Arguments are
    those of :class:`BinaryResBlock`.
    """

    conv_suffixes = ('1', '2')


def _make_downsample(in_channels: int, out_channels: int, stride: int,
                     norm_cfg: dict) -> Optional[nn.Sequential]:
    """The real-valued shortcut of a stage's first block, None where input
    and output shapes match."""
    if stride == 1 and in_channels == out_channels:
        return None
    # Avg-pool keeps every input position, the 1x1 conv then changes the
    # width (index 0 is the pool, as in the authors' checkpoints).
    # ceil_mode matches the 3x3/2 conv's output size on odd inputs
    # (7 -> 4); even inputs are unaffected.
    pool = nn.AvgPool2d(
        stride, stride, ceil_mode=True,
        count_include_pad=False) if stride > 1 else nn.Identity()
    return nn.Sequential(
        pool, nn.Conv2d(in_channels, out_channels, 1, bias=False),
        build_norm_layer(norm_cfg, out_channels)[1])


@MODELS.register_module()
class BiRealNet(BaseBackbone):
    """Bi-Real Net backbone.

    A ResNet-18/34 topology in which every 3x3 conv is binary and has its
    own real-valued shortcut, so the real activations before each sign are
    carried to the next block (`Bi-Real Net
    <https://arxiv.org/abs/1808.00278>`_). There is no ReLU anywhere. The
    stem conv, the 1x1 convs of the downsampling shortcuts (avg-pool 2x2,
    1x1 conv, BN) and the classifier stay real-valued.

    The same class builds the real-valued networks of the paper's
    pre-training steps: set ``conv_cfg=None`` and put ReLU, LeakyClip or
    Clip in ``act_cfg`` (where sign sits in the binary network). Parameter
    names do not depend on ``conv_cfg``/``act_cfg``, so each training
    step's checkpoint loads into the next with no missing or unexpected
    keys.

    :attr:`arch_settings` maps each depth to ``(block, blocks per stage)``;
    subclasses replace it (:class:`BinaryResNet`) or override
    :meth:`make_res_layer` to build the stages differently.

    Args:
        depth (int): Network depth, a key of :attr:`arch_settings` (18, 34).
        in_channels (int): Number of input image channels. Defaults to 3.
        stem_channels (int): Output channels of the stem. Defaults to 64.
        base_channels (int): Width of the first stage; stage ``i`` has
            ``base_channels * 2**i`` channels. Defaults to 64.
        stem_type (str): A key of :data:`STEM_GEOMETRIES`. ``'imagenet'``:
            7x7/2 conv, BN, 3x3/2 max-pool (the paper). ``'small'``: 3x3/1
            conv and BN, no max-pool, for 28-32 px images. Defaults to
            ``'imagenet'``.
        convs_per_shortcut (int, optional): Kept for configs written before
            :class:`BinaryResNet`: 1 builds from ``BiRealNet.arch_settings``
            (Bi-Real blocks), 2 from ``BinaryResNet.arch_settings`` (the
            plain 1-bit ResNet, one shortcut per two convs). None uses the
            class's own :attr:`arch_settings`. Defaults to None.
        conv_cfg (dict, optional): Config of the 3x3 convs. Defaults to a
            :class:`BinaryConv2d` with ApproxSign and magnitude-aware
            weights; None builds a real ``nn.Conv2d``.
        act_cfg (dict, optional): Activation before each 3x3 conv, None for
            the binary network. Defaults to None.
        sign_bias_cfg (dict, optional): ReActNet's RSign: a learnable
            per-channel shift before each binary conv's sign, e.g.
            ``dict(type='LearnableBias')`` (state-dict keys
            ``layer{i}.{j}.act{s}.bias``). None, the default, adds nothing.
        block_act_cfg (dict, optional): ReActNet's activation after each
            block's residual add, e.g. ``dict(type='RPReLU')`` (keys
            ``layer{i}.{j}.block_act.*``). None, the default, adds nothing.
        norm_cfg (dict): Config of the norm layers. Defaults to
            ``dict(type='BN', requires_grad=True)``.
        out_indices (Sequence[int]): Stages whose output is returned.
            Defaults to ``(3, )``.
        frozen_stages (int): Stages to freeze (stop grad and set eval mode);
            -1 freezes nothing, 0 the stem. Defaults to -1.
        norm_eval (bool): Keep norm layers in eval mode during training.
            Defaults to False.
        padding (str): Padding of the stem conv, the max-pool and the 3x3
            convs (:mod:`mmbireal.models.padding`): ``'symmetric'``
            (PyTorch's, the same on every side) or ``'tf_same'``
            (TensorFlow's ``'same'``, one less before on stride-2 layers at
            even sizes: larq-zoo's models). The binary convs pad their
            binarized input with 0 either way. Defaults to ``'symmetric'``.
        init_cfg (dict | list[dict], optional): Initialization config.
            Defaults to Kaiming for convs and 1 for norm weights.

    Example:
        >>> import torch
        >>> from mmbireal.models import BiRealNet
        >>> model = BiRealNet(depth=18, out_indices=(0, 1, 2, 3)).eval()
        >>> for out in model(torch.rand(1, 3, 64, 64)):
        ...     print(tuple(out.shape))
        (1, 64, 16, 16)
        (1, 128, 8, 8)
        (1, 256, 4, 4)
        (1, 512, 2, 2)
        >>> block = model.layer2[0]
        >>> [type(conv).__name__ for _, conv, _ in block.conv_units()]
        ['BinaryConv2d']
    """

    #: depth -> (block, number of blocks in each stage)
    arch_settings = {
        18: (BiRealBlock, (4, 4, 4, 4)),
        34: (BiRealBlock, (6, 8, 12, 6)),
    }

    def __init__(self,
                 depth: int,
                 in_channels: int = 3,
                 stem_channels: int = 64,
                 base_channels: int = 64,
                 stem_type: str = 'imagenet',
                 convs_per_shortcut: Optional[int] = None,
                 conv_cfg: Optional[dict] = dict(
                     type='BinaryConv2d',
                     act_binarizer='approx_sign',
                     weight_binarizer='magnitude_aware'),
                 act_cfg: Optional[dict] = None,
                 sign_bias_cfg: Optional[dict] = None,
                 block_act_cfg: Optional[dict] = None,
                 norm_cfg: dict = dict(type='BN', requires_grad=True),
                 out_indices: Sequence[int] = (3, ),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 padding: str = 'symmetric',
                 init_cfg: Optional[Union[dict, list]] = [
                     dict(type='Kaiming', layer=['Conv2d']),
                     dict(type='Constant', val=1, layer=['_BatchNorm'])
                 ]) -> None:
        super().__init__(init_cfg)
        if isinstance(out_indices, int):  # as MMPretrain's ResNet takes it
            out_indices = (out_indices, )
        if not isinstance(out_indices, Sequence) or not all(
                type(i) is int for i in out_indices):
            raise InputError(f'invalid out_indices {out_indices!r}; '
                             'accepted: an int or a sequence of ints')
        out_indices = tuple(out_indices)
        self._check_arguments(depth, stem_type, convs_per_shortcut,
                              in_channels, stem_channels, base_channels,
                              out_indices, frozen_stages)
        self.padding = check_padding(padding)
        self.block, self.stage_blocks = self._arch_table(
            convs_per_shortcut)[depth]
        num_stages = len(self.stage_blocks)
        self.depth = depth
        self.in_channels = in_channels
        self.stem_type = stem_type
        self.stem_geometry = STEM_GEOMETRIES[stem_type]
        self.convs_per_shortcut = len(self.block.conv_suffixes)
        self.out_indices = tuple(i % num_stages for i in out_indices)
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval

        self.conv1 = self.stem_geometry.build_conv(in_channels, stem_channels,
                                                   padding)
        self.maxpool = self.stem_geometry.build_pool(padding)
        self.bn1 = build_norm_layer(norm_cfg, stem_channels)[1]
        self.res_layers = []
        channels = stem_channels
        for i, num_blocks in enumerate(self.stage_blocks):
            out_channels = base_channels * 2**i
            layer = self.make_res_layer(
                block=self.block,
                num_blocks=num_blocks,
                in_channels=channels,
                out_channels=out_channels,
                stride=1 if i == 0 else 2,
                conv_cfg=conv_cfg,
                norm_cfg=norm_cfg,
                act_cfg=act_cfg,
                padding=padding,
                # only when set: a block class without them keeps working
                **{k: v for k, v in (('sign_bias_cfg', sign_bias_cfg),
                                     ('block_act_cfg', block_act_cfg))
                   if v is not None})
            name = f'layer{i + 1}'
            self.add_module(name, layer)
            self.res_layers.append(name)
            channels = out_channels
        self.feat_dim = channels
        self._freeze_stages()
        # the same idiom as MMPretrain's ViT for its position embedding
        self._register_load_state_dict_pre_hook(self.adapt_packed_state)

    def adapt_packed_state(self, state_dict: dict, prefix: str, *args,
                           **kwargs) -> None:
        """Fit the float state dict of a packed 1-bit file to this model.

        That state dict (:mod:`mmbireal.deploy.unpack`) carries the file's
        padding mode under ``padding``, which no key or shape tells apart:
        weights of another mode are refused. Its BNs hold the file's
        per-channel affines for ``eps = 0`` (the file does not record the
        eps its BNs were folded with): each BN weight is scaled here by its
        module's ``sqrt(1 + eps)``, so that the BN computes the affine
        exactly whatever eps the config sets. Read through any loader
        (mmengine's ``load_checkpoint``, ``get_model(pretrained=...)``,
        ``load_from``, ``Module.load_state_dict``), the state dict is adapted
        here once: ``padding`` is removed.
        """
        recorded = state_dict.pop(prefix + 'padding', None)
        if recorded is None:  # not from a packed file
            return
        if recorded != self.padding:
            raise CheckpointError(
                f'these weights were exported from a model with padding '
                f'{recorded!r}; this model pads {self.padding!r}: build it '
                'from the config they were exported from')
        for name, module in self.named_modules(prefix=prefix.rstrip('.')):
            key = f'{name}.weight'
            if isinstance(module, _BatchNorm) and key in state_dict:
                # in double, rounded once; a new tensor: the caller's
                # state dict stays as it was
                weight = state_dict[key]
                state_dict[key] = (weight.double() * math.sqrt(
                    1.0 + module.eps)).to(weight.dtype)

    def _arch_table(self, convs_per_shortcut: Optional[int]) -> dict:
        """The ``arch_settings`` to build from (see ``convs_per_shortcut``)."""
        if convs_per_shortcut is None:
            return self.arch_settings
        return {1: BiRealNet, 2: BinaryResNet}[convs_per_shortcut] \
            .arch_settings

    def _check_arguments(self, depth: int, stem_type: str,
                         convs_per_shortcut: Optional[int], in_channels: int,
                         stem_channels: int, base_channels: int,
                         out_indices: Sequence[int],
                         frozen_stages: int) -> None:
        """Raise :class:`InputError` naming the first bad argument and what
        is accepted."""
        # first: it picks the table the depth is looked up in
        if convs_per_shortcut not in (None, 1, 2):
            raise InputError('invalid convs_per_shortcut '
                             f'{convs_per_shortcut!r}; accepted: 1, 2')
        arch_settings = self._arch_table(convs_per_shortcut)
        if depth not in tuple(arch_settings):  # unhashable: refused too
            raise InputError(f'invalid depth {depth!r} for '
                             f'{type(self).__name__}; accepted: '
                             f'{sorted(arch_settings)}')
        # a tuple, not the dict: an unhashable value is refused, not a crash
        if stem_type not in tuple(STEM_GEOMETRIES):
            raise InputError(f'invalid stem_type {stem_type!r}; accepted: '
                             f'{tuple(STEM_GEOMETRIES)}')
        for name, value in (('in_channels', in_channels),
                            ('stem_channels', stem_channels),
                            ('base_channels', base_channels)):
            if isinstance(value, bool) or not isinstance(value, int) \
                    or value <= 0:
                raise InputError(
                    f'{name} must be a positive int, got {value!r}')
        num_stages = len(arch_settings[depth][1])
        for index in out_indices:
            if not -num_stages <= index < num_stages:
                raise InputError(f'invalid out_indices {out_indices}; each '
                                 f'must be in [-{num_stages}, {num_stages})')
        if type(frozen_stages) is not int or \
                not -1 <= frozen_stages <= num_stages:
            raise InputError(f'invalid frozen_stages {frozen_stages!r}; '
                             f'accepted: -1 (none) to {num_stages}')

    def make_res_layer(self, *, block: type, num_blocks: int,
                       in_channels: int, out_channels: int, stride: int,
                       norm_cfg: dict, **block_kwargs) -> nn.Sequential:
        """Build one stage; override it to build stages differently.

        The backbone calls it once per stage with keywords only. The first
        block takes ``stride`` and ``in_channels`` and gets a real-valued
        shortcut (avg-pool, 1x1 conv, norm) where its input and output
        shapes differ.

        Args:
            block (type): Block class, called as ``block(in_channels,
                out_channels, stride=..., downsample=..., norm_cfg=...,
                **block_kwargs)``; :attr:`arch_settings` supplies it.
            num_blocks (int): Number of blocks in the stage.
            in_channels (int): Input channels of the stage.
            out_channels (int): Output channels of every block.
            stride (int): Stride of the first block.
            norm_cfg (dict): Config of the norm layers, the shortcut's too.
            **block_kwargs: Passed on to every block (``conv_cfg``,
                ``act_cfg``, ``padding``, and ``sign_bias_cfg``/
                ``block_act_cfg`` where set).

        Returns:
            nn.Sequential: The blocks; block ``j`` of stage ``i`` has the
            state-dict prefix ``layer{i + 1}.{j}``.
        """
        layers = []
        for j in range(num_blocks):
            downsample = _make_downsample(in_channels, out_channels, stride,
                                          norm_cfg) if j == 0 else None
            layers.append(
                block(
                    in_channels,
                    out_channels,
                    stride=stride if j == 0 else 1,
                    downsample=downsample,
                    norm_cfg=norm_cfg,
                    **block_kwargs))
            in_channels = out_channels
        return nn.Sequential(*layers)

    def _freeze_stages(self) -> None:
        if self.frozen_stages >= 0:
            self.bn1.eval()
            for m in (self.conv1, self.bn1):
                for param in m.parameters():
                    param.requires_grad = False
        for i in range(1, self.frozen_stages + 1):
            m = getattr(self, f'layer{i}')
            m.eval()
            for param in m.parameters():
                param.requires_grad = False

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise InputError(
                f'{type(self).__name__} expects input of shape (N, '
                f'{self.in_channels}, H, W) (in_channels={self.in_channels}'
                f'), got {tuple(x.shape)}')
        x = self.maxpool(self.bn1(self.conv1(x)))
        outs = []
        for i, name in enumerate(self.res_layers):
            x = getattr(self, name)(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)

    def train(self, mode: bool = True) -> 'BiRealNet':
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                # eval() only matters for norm layers here
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self


@MODELS.register_module()
class BinaryResNet(BiRealNet):
    """The plain 1-bit ResNet: the paper's baseline for Bi-Real Net.

    ResNet-18/34 with :class:`BinaryBasicBlock`: two binary 3x3 convs under
    each real-valued shortcut, so a sign's real input is carried past every
    second conv only. Everything else (stem, downsampling shortcuts,
    arguments, state-dict keys ``layer{i}.{j}.conv1/conv2``) is
    :class:`BiRealNet`'s; ``BiRealNet(convs_per_shortcut=2)`` builds the
    same network.

    Example:
        >>> import torch
        >>> from mmbireal.models.backbones import BinaryResNet
        >>> model = BinaryResNet(depth=18, stem_type='small').eval()
        >>> [len(getattr(model, name)) for name in model.res_layers]
        [2, 2, 2, 2]
        >>> len(model.layer1[0].conv_units())
        2
        >>> tuple(model(torch.rand(1, 3, 28, 28))[0].shape)
        (1, 512, 4, 4)
    """

    arch_settings = {
        18: (BinaryBasicBlock, (2, 2, 2, 2)),
        34: (BinaryBasicBlock, (3, 4, 6, 3)),
    }
