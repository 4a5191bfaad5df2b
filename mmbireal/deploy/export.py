"""Export a trained Bi-Real Net classifier to the packed 1-bit format.

The file format (name, version, key schema) is :mod:`.file_format`'s.
"""
import copy
import io
import os.path as osp
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn
from mmengine.config import Config
from mmpretrain.registry import DATASETS
from torch import Tensor
from torch.nn.modules.batchnorm import _BatchNorm

from mmbireal.analysis import config_test_pipeline, pipeline_input_size
from mmbireal.datasets.transforms import transform_type
from mmbireal.models import (
    ActBinarizer,
    BinaryConv2d,
    BiRealNet,
    LearnableBias,
    RPReLU,
    WeightBinarizer,
)
from mmbireal.models.binarize_kernels import channel_scale
from mmbireal.utils import atomic_torch_save

from .file_format import (
    FORMAT,
    block_act_key,
    block_key,
    conv_key,
    downsample_key,
    version_of,
)
from .images import unreplayable_step
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
                      name: str, padding: str) -> Dict[str, Tensor]:
    if not isinstance(conv, BinaryConv2d):
        raise ExportError(f'{name}: not a BinaryConv2d ({type(conv).__name__}'
                          '); only binary networks can be packed')
    if not (conv.binarizes_input and conv.binarizes_weight):
        raise ExportError(
            f'{name}: act_binarizer={conv.act_binarizer!r}, weight_binarizer='
            f'{conv.weight_binarizer!r}; both must binarize to be packed')
    # the packed format stores sign(x) and sign(W) (times mean|W| if
    # `scaled`): a binarizer with its own forward has no packed form
    for binarizer, base in ((conv.act_binarizer_obj, ActBinarizer),
                            (conv.weight_binarizer_obj, WeightBinarizer)):
        if type(binarizer).binarize is not base.binarize:
            raise ExportError(
                f'{name}: {type(binarizer).__name__} overrides binarize(); '
                'only sign(x) and sign(W) or mean|W| * sign(W) forwards '
                'can be packed')
    if not isinstance(act, (nn.Identity, LearnableBias)):
        raise ExportError(f'{name}: a {type(act).__name__} before the binary '
                          'conv cannot be packed (an RSign LearnableBias '
                          'can)')
    # the backbone's padding mode, as the conv applies it (padding 1, or
    # its input padded by the mode and then padding 0)
    own_padding = (1, 1) if padding == 'symmetric' else (0, 0)
    if (conv.kernel_size != (3, 3) or conv.padding != own_padding
            or getattr(conv, 'input_padding', 'symmetric') != padding
            or conv.dilation != (1, 1) or conv.groups != 1
            or conv.bias is not None or conv.stride not in ((1, 1),
                                                            (2, 2))):
        raise ExportError(f'{name}: only 3x3 convs padded as the backbone '
                          f'({padding!r}), stride 1/2, no bias, no '
                          'groups/dilation can be packed')
    weight = conv.weight.detach().double()
    scale, shift = _bn_affine(bn, name + ' BN')
    if conv.weight_binarizer_obj.scaled:  # alpha * sign(W): into the BN
        scale = scale * channel_scale(weight).flatten()
    packed = {
        'bits': pack_signs_torch(weight.permute(0, 2, 3, 1)),
        'scale': scale.float(),
        'shift': shift.float(),
    }
    if isinstance(act, LearnableBias):  # RSign: sign(x + b)
        packed['sign_bias'] = act.bias.detach().float().clone()
    return packed


def _pack_block_act(block: nn.Module, name: str) -> Dict[str, Tensor]:
    """The block's activation after the residual add: none, or RPReLU."""
    act = getattr(block, 'block_act', None)
    if act is None:
        return {}
    if not isinstance(act, RPReLU):
        raise ExportError(f'{name}: a {type(act).__name__} after the '
                          'residual add cannot be packed (RPReLU can)')
    return {
        'shift_in': act.shift_in.bias.detach().float().clone(),
        'slope': act.prelu.weight.detach().float().clone(),
        'shift_out': act.shift_out.bias.detach().float().clone(),
    }


def _block_convs(block: nn.Module,
                 prefix: str) -> List[Tuple[nn.Module, nn.Module, nn.Module]]:
    """The block's ``(act, conv, norm)`` triples in forward order, as
    every BiRealNet block lists them (``BinaryResBlock.conv_units``)."""
    conv_units = getattr(block, 'conv_units', None)
    if not callable(conv_units):
        raise ExportError(f'{prefix}: {type(block).__name__} does not list '
                          'its convs (conv_units())')
    convs = list(conv_units())
    if not convs:
        raise ExportError(f'{prefix}: {type(block).__name__} has no binary '
                          'convs')
    return convs


def config_classes(cfg: Config) -> Optional[List[str]]:
    """Class names of the config's test dataset: its ``metainfo`` or
    ``classes`` entry if it lists them, else its class's ``METAINFO``."""
    dataset = (cfg.get('test_dataloader') or {}).get('dataset') or {}
    metainfo = dataset.get('metainfo')  # a dict, or a file we do not read
    given = metainfo.get('classes') if isinstance(metainfo, dict) else None
    if given is None:
        given = dataset.get('classes')
    if isinstance(given, (list, tuple)):
        return [str(c) for c in given]
    kind = dataset.get('type')
    cls = DATASETS.get(kind) if isinstance(kind, str) else kind
    classes = (getattr(cls, 'METAINFO', None) or {}).get('classes')
    return [str(c) for c in classes] if classes else None


def preprocessing_meta(cfg: Config) -> dict:
    """What :meth:`PackedBiRealNet.classify` needs from a config besides
    the data preprocessor: ``resize_short`` (the test pipeline's
    ``ResizeEdge`` with ``edge='short'``, or None), ``crop_size``
    (``[H, W]`` of the network input: :func:`pipeline_input_size`, or
    None) and ``classes`` (or None). A test pipeline with a step
    :meth:`PackedBiRealNet.classify` would not reproduce
    (:func:`~.images.unreplayable_step`) records neither size, and that
    step as ``unreplayed_step``: the file then takes tensors only.

    Raises:
        ExportError: a short side smaller than the crop.
    """
    step = unreplayable_step(config_test_pipeline(cfg))
    if step is not None:
        return dict(resize_short=None, crop_size=None, unreplayed_step=step,
                    classes=config_classes(cfg))
    resize_short = None
    for transform in config_test_pipeline(cfg):
        if (isinstance(transform, dict)
                and transform_type(transform) == 'ResizeEdge'
                and transform.get('edge', 'short') == 'short'
                and isinstance(transform.get('scale'), int)):
            resize_short = int(transform['scale'])
    size = pipeline_input_size(cfg)
    crop_size = [int(s) for s in size] if size is not None else None
    if resize_short is not None and crop_size is not None and \
            resize_short < min(crop_size):
        raise ExportError(f'the test pipeline resizes the short side to '
                          f'{resize_short}, below its crop {crop_size}')
    return dict(
        resize_short=resize_short,
        crop_size=crop_size,
        classes=config_classes(cfg))


def pack_classifier(model: nn.Module, cfg: Optional[Config] = None) -> dict:
    """The packed-file dict of an mmpretrain ``ImageClassifier`` with a
    binary :class:`BiRealNet`, a ``GlobalAveragePooling`` neck and a
    ``LinearClsHead``. BNs are taken in eval mode (running statistics).

    Args:
        model (nn.Module): The classifier.
        cfg (Config, optional): Its config: its test pipeline and dataset
            classes are stored too (:func:`preprocessing_meta`), so
            :meth:`PackedBiRealNet.classify` can take images. Defaults to
            None (a file that takes normalised tensors only).

    Raises:
        ExportError: anything the packed format cannot express.
    """
    from mmpretrain.models.heads import LinearClsHead
    from mmpretrain.models.necks import GlobalAveragePooling
    if any(t.device.type != 'cpu' for t in model.state_dict().values()):
        # the file is read on CPUs: pack a CPU copy of a GPU-trained model
        model = copy.deepcopy(model).cpu()
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
    convs_per_block = set()
    sign_biases, block_acts = set(), set()  # per conv / block: present?
    for i, layer_name in enumerate(backbone.res_layers):
        layer = getattr(backbone, layer_name)
        blocks.append(len(layer))
        for j, block in enumerate(layer):
            prefix = block_key(i, j)  # the module's name, as in messages
            convs = _block_convs(block, prefix)
            convs_per_block.add(len(convs))
            if j == 0:
                widths.append(convs[-1][1].out_channels)
                strides.append(convs[0][1].stride[0])
            for k, (act, conv, bn) in enumerate(convs):
                fields = _pack_binary_conv(conv, bn, act, f'{prefix}.conv{k}',
                                           backbone.padding)
                sign_biases.add('sign_bias' in fields)
                for key, value in fields.items():
                    weights[conv_key(i, j, k, key)] = value
            fields = _pack_block_act(block, prefix)
            block_acts.add(bool(fields))
            for key, value in fields.items():
                weights[block_act_key(i, j, key)] = value
            if block.downsample is not None:
                conv = block.downsample[1]
                scale, shift = _bn_affine(block.downsample[2],
                                          f'{prefix}.downsample BN')
                weights[downsample_key(i, j, 'weight')] = (
                    conv.weight.detach().float().flatten(1).clone())
                weights[downsample_key(i, j, 'scale')] = scale.float()
                weights[downsample_key(i, j, 'shift')] = shift.float()
    weights['fc.weight'] = head.fc.weight.detach().float().clone()
    weights['fc.bias'] = head.fc.bias.detach().float().clone()

    if len(convs_per_block) != 1 or not convs_per_block <= {1, 2}:
        raise ExportError('the packed format takes blocks of 1 or 2 binary '
                          'convs, all alike; got blocks of '
                          f'{sorted(convs_per_block)}')

    for what, present in (('RSign biases', sign_biases),
                          ('RPReLUs', block_acts)):
        if len(present) > 1:
            raise ExportError(f'{what} on some binary convs or blocks only '
                              'cannot be packed: all or none')
    react = {}  # ReActNet's parts: only in the files that have them
    if True in sign_biases:
        react['sign_bias'] = True
    if True in block_acts:
        react['block_act'] = 'rprelu'

    first = _block_convs(backbone.layer1[0], 'layer1.0')[0][1]
    meta = {
        'act_binarizer': str(first.act_binarizer),
        'weight_binarizer': str(first.weight_binarizer),
    }
    preprocessor = getattr(model, 'data_preprocessor', None)
    for key in ('mean', 'std'):
        value = getattr(preprocessor, key, None)
        if isinstance(value, Tensor):
            meta[key] = [float(v) for v in value.flatten()]
    to_rgb = getattr(preprocessor, 'to_rgb', None)
    if isinstance(to_rgb, bool):
        meta['to_rgb'] = to_rgb
    if cfg is not None:
        meta.update(preprocessing_meta(cfg))
        classes = meta['classes']
        if classes is not None and len(classes) != head.fc.out_features:
            meta['classes'] = None  # names of another label set
    arch = {
        'depth': int(backbone.depth),
        'stem_type': str(backbone.stem_type),
        'in_channels': int(backbone.in_channels),
        'stem_channels': int(conv1.out_channels),
        'widths': widths,
        'strides': strides,
        'blocks': blocks,
        'convs_per_shortcut': convs_per_block.pop(),
        'num_classes': int(head.fc.out_features),
        **react,
    }
    if backbone.padding != 'symmetric':  # files without it stay version 1
        arch['padding'] = str(backbone.padding)
    return {
        'format': FORMAT,
        'version': version_of(arch),
        'arch': arch,
        'weights': weights,
        'meta': meta,
    }


def export_packed(model: nn.Module,
                  path: str,
                  cfg: Optional[Config] = None) -> int:
    """Write the packed 1-bit file of a trained classifier.

    Args:
        model (nn.Module): A Bi-Real Net ``ImageClassifier`` (binary convs
            with both binarizers, eval-mode BN).
        path (str): The file to write (atomically: a temporary file, then
            renamed).
        cfg (Config, optional): The model's config; its test pipeline and
            class names are recorded for :meth:`PackedBiRealNet.classify`.
            Defaults to None.

    Returns:
        int: The file's size in bytes.

    Raises:
        ExportError: the model has a layer the packed format cannot hold
            (one line naming it).
        CheckpointError: the file cannot be written (one line).
    """
    atomic_torch_save(pack_classifier(model, cfg), path)
    return osp.getsize(path)


def float_state_bytes(model: nn.Module) -> int:
    """Size of the model's fp32 ``state_dict`` as ``torch.save`` writes it:
    the float checkpoint without optimizer or runtime state."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.tell()
