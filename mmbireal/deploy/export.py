"""Export a trained Bi-Real Net classifier to the packed 1-bit format.

The file format (name, version, key schema) is :mod:`.file_format`'s.
"""
import io
import os
import os.path as osp
from typing import Dict, List, Optional, Tuple, Union

import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.registry import init_default_scope
from torch import Tensor
from torch.nn.modules.batchnorm import _BatchNorm

from mmbireal.models import BinaryConv2d, BiRealNet
from mmbireal.models.backbones.bireal_net import BinaryBasicBlock, BiRealBlock
from mmbireal.utils import (
    check_state_dict_fits,
    load_state_dict_file,
)

from .file_format import FORMAT, VERSION
from .reference import pack_signs_torch


class ExportError(ValueError):
    """The model cannot be expressed in the packed format."""


def _bn_affine(bn: nn.Module, name: str) -> Tuple[Tensor, Tensor]:
    """Eval-mode BN as float64 ``(scale, shift)``."""
    if not isinstance(bn, _BatchNorm) or bn.running_var is None:
        raise ExportError(f'{name}: expected a BatchNorm with running '
                          f'statistics, got {type(bn).__name__}')
    scale = 1.0 / torch.sqrt(bn.running_var.double() + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight.detach().double()
    shift = -bn.running_mean.double() * scale
    if bn.bias is not None:
        shift = shift + bn.bias.detach().double()
    return scale, shift


def _pack_binary_conv(conv: nn.Module, bn: nn.Module, act: nn.Module,
                      name: str) -> Dict[str, Tensor]:
    if not isinstance(conv, BinaryConv2d):
        raise ExportError(f'{name}: not a BinaryConv2d ({type(conv).__name__}'
                          '); only binary networks can be packed')
    if not (conv.binarizes_input and conv.binarizes_weight):
        raise ExportError(
            f'{name}: act_binarizer={conv.act_binarizer!r}, weight_binarizer='
            f'{conv.weight_binarizer!r}; both must binarize to be packed')
    if not isinstance(act, nn.Identity):
        raise ExportError(f'{name}: a {type(act).__name__} before the binary '
                          'conv cannot be packed')
    if (conv.kernel_size != (3, 3) or conv.padding != (1, 1)
            or conv.dilation != (1, 1) or conv.groups != 1
            or conv.bias is not None or conv.stride not in ((1, 1),
                                                            (2, 2))):
        raise ExportError(f'{name}: only 3x3 convs, padding 1, stride 1/2, '
                          'no bias, no groups/dilation can be packed')
    weight = conv.weight.detach().double()
    scale, shift = _bn_affine(bn, name + ' BN')
    if conv.weight_binarizer_obj.scaled:  # alpha * sign(W): into the BN
        scale = scale * weight.abs().mean(dim=(1, 2, 3))
    return {
        'bits': pack_signs_torch(weight.permute(0, 2, 3, 1)),
        'scale': scale.float(),
        'shift': shift.float(),
    }


def pack_classifier(model: nn.Module) -> dict:
    """The packed-file dict of an mmpretrain ``ImageClassifier`` with a
    binary :class:`BiRealNet`, a ``GlobalAveragePooling`` neck and a
    ``LinearClsHead``. BNs are taken in eval mode (running statistics).

    Raises:
        ExportError: anything the packed format cannot express.
    """
    from mmpretrain.models.heads import LinearClsHead
    from mmpretrain.models.necks import GlobalAveragePooling
    backbone = getattr(model, 'backbone', None)
    if not isinstance(backbone, BiRealNet):
        raise ExportError('the model has no BiRealNet backbone (got '
                          f'{type(backbone).__name__})')
    neck, head = getattr(model, 'neck', None), getattr(model, 'head', None)
    if not isinstance(neck, GlobalAveragePooling) or not isinstance(
            head, LinearClsHead):
        raise ExportError('only GlobalAveragePooling + LinearClsHead heads '
                          f'can be packed, got {type(neck).__name__} + '
                          f'{type(head).__name__}')
    num_stages = len(backbone.res_layers)
    if max(backbone.out_indices) != num_stages - 1:
        raise ExportError('the head must read the last stage (out_indices '
                          f'{backbone.out_indices})')

    weights: Dict[str, Tensor] = {}
    stem_scale, stem_shift = _bn_affine(backbone.bn1, 'stem BN')
    conv1 = backbone.conv1
    weights['stem.weight'] = conv1.weight.detach().float().clone()
    weights['stem.scale'] = stem_scale.float()
    weights['stem.shift'] = stem_shift.float()

    widths: List[int] = []
    strides: List[int] = []
    blocks: List[int] = []
    for layer_name in backbone.res_layers:
        layer = getattr(backbone, layer_name)
        blocks.append(len(layer))
        for j, block in enumerate(layer):
            prefix = f'{layer_name}.{j}'
            if isinstance(block, BiRealBlock):
                convs = [(block.conv, block.bn, block.act)]
            elif isinstance(block, BinaryBasicBlock):
                convs = [(block.conv1, block.bn1, block.act1),
                         (block.conv2, block.bn2, block.act2)]
            else:
                raise ExportError(f'{prefix}: unknown block '
                                  f'{type(block).__name__}')
            if j == 0:
                widths.append(convs[-1][0].out_channels)
                strides.append(convs[0][0].stride[0])
            for k, (conv, bn, act) in enumerate(convs):
                for key, value in _pack_binary_conv(
                        conv, bn, act, f'{prefix}.conv{k}').items():
                    weights[f'{prefix}.conv{k}.{key}'] = value
            if block.downsample is not None:
                conv = block.downsample[1]
                scale, shift = _bn_affine(block.downsample[2],
                                          f'{prefix}.downsample BN')
                weights[f'{prefix}.downsample.weight'] = (
                    conv.weight.detach().float().flatten(1).clone())
                weights[f'{prefix}.downsample.scale'] = scale.float()
                weights[f'{prefix}.downsample.shift'] = shift.float()
    weights['fc.weight'] = head.fc.weight.detach().float().clone()
    weights['fc.bias'] = head.fc.bias.detach().float().clone()

    first = backbone.layer1[0]
    act_binarizer = (first.conv if isinstance(first, BiRealBlock) else
                     first.conv1).act_binarizer
    meta = {
        'act_binarizer': str(act_binarizer),
        'weight_binarizer': str(
            (first.conv if isinstance(first, BiRealBlock) else
             first.conv1).weight_binarizer),
    }
    preprocessor = getattr(model, 'data_preprocessor', None)
    for key in ('mean', 'std'):
        value = getattr(preprocessor, key, None)
        if isinstance(value, Tensor):
            meta[key] = [float(v) for v in value.flatten()]
    return {
        'format': FORMAT,
        'version': VERSION,
        'arch': {
            'depth': int(backbone.depth),
            'stem_type': str(backbone.stem_type),
            'in_channels': int(backbone.in_channels),
            'stem_channels': int(conv1.out_channels),
            'widths': widths,
            'strides': strides,
            'blocks': blocks,
            'convs_per_shortcut': int(backbone.convs_per_shortcut),
            'num_classes': int(head.fc.out_features),
        },
        'weights': weights,
        'meta': meta,
    }


def export_packed(model: nn.Module, path: str) -> int:
    """Write :func:`pack_classifier` of ``model`` to ``path``; return its
    size in bytes."""
    packed = pack_classifier(model)
    tmp = f'{path}.tmp{os.getpid()}'
    torch.save(packed, tmp)
    os.replace(tmp, path)
    return osp.getsize(path)


def float_state_bytes(model: nn.Module) -> int:
    """Size of the model's fp32 ``state_dict`` as ``torch.save`` writes it:
    the float checkpoint without optimizer or runtime state."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.tell()


def build_classifier(config: Union[str, Config],
                     checkpoint: Optional[str] = None,
                     cfg_options: Optional[dict] = None) -> nn.Module:
    """Build ``cfg.model`` from a config (file), load a checkpoint
    (weights only, through :func:`mmbireal.utils.load_checkpoint_file`) and
    return it in eval mode.

    Raises:
        CheckpointError: an unreadable checkpoint or one whose keys or
            shapes do not match the config's model (one line).
    """
    from mmpretrain.registry import MODELS  # mmbireal is registered above
    cfg = Config.fromfile(config) if isinstance(config, str) else config
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    init_default_scope('mmpretrain')
    model_cfg = cfg.model.copy()
    # as mmengine's Runner does: the top-level preprocessor (mean/std) is
    # the model's unless the model sets its own
    if cfg.get('data_preprocessor') is not None:
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    model = MODELS.build(model_cfg)
    if checkpoint is not None:
        state = load_state_dict_file(checkpoint)
        check_state_dict_fits(model, state, checkpoint)
        model.load_state_dict(state, strict=False)  # data preprocessor
    return model.eval()
