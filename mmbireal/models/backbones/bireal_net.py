"""Bi-Real Net backbone (Liu et al., ECCV 2018)."""
from typing import Optional, Sequence, Tuple, Union

import torch.nn as nn
from mmcv.cnn import build_activation_layer, build_conv_layer, build_norm_layer
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS
from torch import Tensor
from torch.nn.modules.batchnorm import _BatchNorm

from mmbireal.utils.errors import InputError

STEM_TYPES = ('imagenet', 'small')


def _build_act(act_cfg: Optional[dict]) -> nn.Module:
    return nn.Identity() if act_cfg is None else build_activation_layer(
        act_cfg)


class BiRealBlock(BaseModule):
    """One 3x3 conv with its own shortcut: ``bn(conv(act(x))) + short(x)``.

    ``act`` is where sign sits in the binary network; there it is an
    identity because :class:`BinaryConv2d` binarizes its own input.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        stride (int): Stride of the 3x3 conv. Defaults to 1.
        downsample (nn.Module, optional): Shortcut branch; identity if None.
        conv_cfg (dict, optional): Config of the 3x3 conv.
        norm_cfg (dict): Config of the norm layer.
        act_cfg (dict, optional): Config of the activation before the conv.
        init_cfg (dict, optional): Initialization config.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 stride: int = 1,
                 downsample: Optional[nn.Module] = None,
                 conv_cfg: Optional[dict] = None,
                 norm_cfg: dict = dict(type='BN'),
                 act_cfg: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg)
        self.act = _build_act(act_cfg)
        self.conv = build_conv_layer(
            conv_cfg, in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn = build_norm_layer(norm_cfg, out_channels)[1]
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.bn(self.conv(self.act(x)))
        out += identity  # in place: the norm's backward needs its input only
        return out


class BinaryBasicBlock(BaseModule):
    """Two 3x3 convs under one shortcut: the plain 1-bit ResNet block.

    The paper's baseline without Bi-Real's per-conv shortcut. Arguments are
    those of :class:`BiRealBlock`.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 stride: int = 1,
                 downsample: Optional[nn.Module] = None,
                 conv_cfg: Optional[dict] = None,
                 norm_cfg: dict = dict(type='BN'),
                 act_cfg: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg)
        self.act1 = _build_act(act_cfg)
        self.conv1 = build_conv_layer(
            conv_cfg, in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = build_norm_layer(norm_cfg, out_channels)[1]
        self.act2 = _build_act(act_cfg)
        self.conv2 = build_conv_layer(
            conv_cfg, out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = build_norm_layer(norm_cfg, out_channels)[1]
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.bn1(self.conv1(self.act1(x)))
        out = self.bn2(self.conv2(self.act2(out)))
        out += identity
        return out


@MODELS.register_module()
class BiRealNet(BaseModule):
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

    Args:
        depth (int): Network depth, 18 or 34.
        in_channels (int): Number of input image channels. Defaults to 3.
        stem_channels (int): Output channels of the stem. Defaults to 64.
        base_channels (int): Width of the first stage; stage ``i`` has
            ``base_channels * 2**i`` channels. Defaults to 64.
        stem_type (str): ``'imagenet'``: 7x7/2 conv, BN, 3x3/2 max-pool (the
            paper). ``'small'``: 3x3/1 conv and BN, no max-pool, for 28-32 px
            images. Defaults to ``'imagenet'``.
        convs_per_shortcut (int): 1 for Bi-Real blocks (the paper); 2 for a
            plain 1-bit ResNet with one shortcut per two convs (the paper's
            baseline). Defaults to 1.
        conv_cfg (dict, optional): Config of the 3x3 convs. Defaults to a
            :class:`BinaryConv2d` with ApproxSign and magnitude-aware
            weights; None builds a real ``nn.Conv2d``.
        act_cfg (dict, optional): Activation before each 3x3 conv, None for
            the binary network. Defaults to None.
        norm_cfg (dict): Config of the norm layers. Defaults to
            ``dict(type='BN', requires_grad=True)``.
        out_indices (Sequence[int]): Stages whose output is returned.
            Defaults to ``(3, )``.
        frozen_stages (int): Stages to freeze (stop grad and set eval mode);
            -1 freezes nothing, 0 the stem. Defaults to -1.
        norm_eval (bool): Keep norm layers in eval mode during training.
            Defaults to False.
        init_cfg (dict | list[dict], optional): Initialization config.

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
    """

    # depth: number of 3x3 convs in each stage
    arch_settings = {18: (4, 4, 4, 4), 34: (6, 8, 12, 6)}

    def __init__(self,
                 depth: int,
                 in_channels: int = 3,
                 stem_channels: int = 64,
                 base_channels: int = 64,
                 stem_type: str = 'imagenet',
                 convs_per_shortcut: int = 1,
                 conv_cfg: Optional[dict] = dict(
                     type='BinaryConv2d',
                     act_binarizer='approx_sign',
                     weight_binarizer='magnitude_aware'),
                 act_cfg: Optional[dict] = None,
                 norm_cfg: dict = dict(type='BN', requires_grad=True),
                 out_indices: Sequence[int] = (3, ),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 init_cfg: Optional[Union[dict, list]] = [
                     dict(type='Kaiming', layer=['Conv2d']),
                     dict(type='Constant', val=1, layer=['_BatchNorm'])
                 ]) -> None:
        super().__init__(init_cfg)
        if depth not in self.arch_settings:
            raise InputError(f'invalid depth {depth!r} for BiRealNet; '
                             f'accepted: {sorted(self.arch_settings)}')
        if stem_type not in STEM_TYPES:
            raise InputError(f'invalid stem_type {stem_type!r}; accepted: '
                             f'{STEM_TYPES}')
        if convs_per_shortcut not in (1, 2):
            raise InputError('invalid convs_per_shortcut '
                             f'{convs_per_shortcut!r}; accepted: 1, 2')
        for name, value in (('in_channels', in_channels),
                            ('stem_channels', stem_channels),
                            ('base_channels', base_channels)):
            if isinstance(value, bool) or not isinstance(value, int) \
                    or value <= 0:
                raise InputError(
                    f'{name} must be a positive int, got {value!r}')
        num_stages = len(self.arch_settings[depth])
        out_indices = tuple(out_indices)
        for index in out_indices:
            if not -num_stages <= index < num_stages:
                raise InputError(f'invalid out_indices {out_indices}; each '
                                 f'must be in [-{num_stages}, {num_stages})')
        if not -1 <= frozen_stages <= num_stages:
            raise InputError(f'invalid frozen_stages {frozen_stages!r}; '
                             f'accepted: -1 (none) to {num_stages}')

        self.depth = depth
        self.in_channels = in_channels
        self.stem_type = stem_type
        self.convs_per_shortcut = convs_per_shortcut
        self.out_indices = tuple(i % num_stages for i in out_indices)
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval

        self._make_stem(in_channels, stem_channels, norm_cfg)
        block = BiRealBlock if convs_per_shortcut == 1 else BinaryBasicBlock
        self.res_layers = []
        channels = stem_channels
        for i, num_convs in enumerate(self.arch_settings[depth]):
            out_channels = base_channels * 2**i
            layer = self._make_layer(block, num_convs // convs_per_shortcut,
                                     channels, out_channels,
                                     1 if i == 0 else 2, conv_cfg, norm_cfg,
                                     act_cfg)
            name = f'layer{i + 1}'
            self.add_module(name, layer)
            self.res_layers.append(name)
            channels = out_channels
        self.feat_dim = channels
        self._freeze_stages()

    def _make_stem(self, in_channels: int, stem_channels: int,
                   norm_cfg: dict) -> None:
        if self.stem_type == 'imagenet':
            self.conv1 = nn.Conv2d(
                in_channels, stem_channels, 7, 2, 3, bias=False)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
        else:
            self.conv1 = nn.Conv2d(
                in_channels, stem_channels, 3, 1, 1, bias=False)
            self.maxpool = nn.Identity()
        self.bn1 = build_norm_layer(norm_cfg, stem_channels)[1]

    @staticmethod
    def _make_layer(block: type, num_blocks: int, in_channels: int,
                    out_channels: int, stride: int, conv_cfg: Optional[dict],
                    norm_cfg: dict, act_cfg: Optional[dict]) -> nn.Sequential:
        layers = []
        for i in range(num_blocks):
            downsample = None
            if i == 0 and (stride != 1 or in_channels != out_channels):
                # Real-valued: avg-pool keeps every input position, the 1x1
                # conv then changes the width (index 0 is the pool, as in
                # the authors' checkpoints). ceil_mode matches the 3x3/2
                # conv's output size on odd inputs (7 -> 4); even inputs
                # are unaffected.
                downsample = nn.Sequential(
                    nn.AvgPool2d(
                        stride,
                        stride,
                        ceil_mode=True,
                        count_include_pad=False)
                    if stride > 1 else nn.Identity(),
                    nn.Conv2d(in_channels, out_channels, 1, bias=False),
                    build_norm_layer(norm_cfg, out_channels)[1])
            layers.append(
                block(
                    in_channels,
                    out_channels,
                    stride=stride if i == 0 else 1,
                    downsample=downsample,
                    conv_cfg=conv_cfg,
                    norm_cfg=norm_cfg,
                    act_cfg=act_cfg))
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
                f'BiRealNet expects input of shape (N, {self.in_channels}, '
                f'H, W) (in_channels={self.in_channels}), got '
                f'{tuple(x.shape)}')
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
