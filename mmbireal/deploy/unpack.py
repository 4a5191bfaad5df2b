"""A packed 1-bit file as a float checkpoint: the inverse of
:func:`~.export.pack_classifier`.

The packed file holds everything the classifier computes in eval mode, so
:func:`float_state_dict` rebuilds the float-emulated ``ImageClassifier``'s
state dict from it. MMEngine's checkpoint loading goes through
:func:`mmbireal.utils.load_state_dict_file` and our local-file loader,
which call it for packed files: ``tools/test.py CONFIG FILE``,
``load_from``, ``get_model(..., pretrained=FILE)`` and the inferencer take
the 2 MB file as they take the 45 MB checkpoint.

What comes back differs from the trained checkpoint in what eval mode
never reads:

* binary weights are exactly +-1 (the latent magnitudes are not in the
  file): alpha = mean|W| is 1, and the file's per-channel scale, which
  holds alpha, goes into the BN;
* every BN has running mean 0 and variance 1, and weight and bias that
  compute the file's per-channel affine with ``eps = 0``; a ``BiRealNet``
  scales each weight by its own BN's ``sqrt(1 + eps)`` on loading, so the
  affine is exact whatever eps its config sets.

The logits therefore match the packed model's to fp32 rounding.
Fine-tuning from the file starts from +-1 weights, as after a BN retrain.
"""
from typing import Dict, Union

import torch
from torch import Tensor, nn

from mmbireal.models import BiRealNet
from mmbireal.utils.errors import CheckpointError, InputError

from .file_format import FORMAT, block_act_key, conv_key, downsample_key
from .packed_model import PackedBiRealNet
from .reference import unpack_signs


def is_packed_file(checkpoint: object) -> bool:
    """Whether a loaded checkpoint is a packed 1-bit file."""
    return isinstance(checkpoint, dict) and checkpoint.get('format') == FORMAT


def _backbone(arch: dict, meta: dict, source: str) -> BiRealNet:
    """The float backbone the file was packed from, randomly initialised."""
    conv_cfg = dict(
        type='BinaryConv2d',
        act_binarizer=meta.get('act_binarizer', 'approx_sign'),
        weight_binarizer=meta.get('weight_binarizer', 'magnitude_aware'))
    try:
        backbone = BiRealNet(
            depth=arch['depth'],
            in_channels=arch['in_channels'],
            stem_channels=arch['stem_channels'],
            base_channels=arch['widths'][0],
            stem_type=arch['stem_type'],
            convs_per_shortcut=arch['convs_per_shortcut'],
            conv_cfg=conv_cfg,
            sign_bias_cfg=dict(type='LearnableBias')
            if arch.get('sign_bias') else None,
            block_act_cfg=dict(type='RPReLU')
            if arch.get('block_act') == 'rprelu' else None,
            out_indices=(len(arch['blocks']) - 1, ),
            padding=arch.get('padding', 'symmetric'))
    except (InputError, KeyError, TypeError, ValueError) as e:
        what = f'missing {e}' if isinstance(e, KeyError) else str(e)
        raise CheckpointError(f'packed file {source}: {what}') from None
    layers = [getattr(backbone, name) for name in backbone.res_layers]
    firsts = [[conv for _, conv, _ in layer[0].conv_units()]
              for layer in layers]  # each stage's first block's convs
    built = dict(
        blocks=[len(layer) for layer in layers],
        widths=[convs[-1].out_channels for convs in firsts],
        strides=[convs[0].stride[0] for convs in firsts])
    for key, value in built.items():
        if list(arch[key]) != value:
            raise CheckpointError(
                f'packed file {source}: its {key} {list(arch[key])} are not '
                f'those of a BiRealNet of depth {arch["depth"]} ({value})')
    return backbone


def _set_affine(bn: nn.Module, scale: Tensor, shift: Tensor) -> None:
    """Make an eval-mode BN with ``eps = 0`` compute ``x * scale + shift``
    (a BiRealNet scales the weight by its own ``sqrt(1 + eps)`` on loading:
    :meth:`~mmbireal.models.BiRealNet.adapt_packed_state`)."""
    bn.running_mean.zero_()
    bn.running_var.fill_(1.0)
    bn.weight.data.copy_(scale)
    bn.bias.data.copy_(shift)


@torch.no_grad()
def float_state_dict(packed: dict,
                     source: str = '<dict>') -> Dict[str, Union[Tensor, str]]:
    """The float classifier's state dict (``backbone.*``, ``head.fc.*``)
    that computes what the packed file computes.

    Args:
        packed (dict): A packed file as loaded (:func:`is_packed_file`).
        source (str): Where it came from, for error messages.

    Returns:
        dict: The state dict of the ``ImageClassifier`` (BiRealNet backbone,
        ``GlobalAveragePooling``, ``LinearClsHead``) the file was exported
        from, without the data preprocessor's buffers, and with the
        padding mode as the string ``backbone.padding``, which
        :class:`~mmbireal.models.BiRealNet` checks and removes on loading.

    Raises:
        CheckpointError: not a version of the format this code reads, or
            the file's architecture or weights do not form a BiRealNet (one
            line).
    """
    # the reader's checks first (format version, every tensor's dtype and
    # shape, the arch's values): one validation for both readers of the
    # format, before anything the file's numbers size is allocated
    PackedBiRealNet(packed, backend='torch', source=source)
    arch, weights = packed['arch'], packed['weights']
    backbone = _backbone(arch, packed.get('meta') or {}, source)
    try:
        backbone.conv1.weight.copy_(weights['stem.weight'])
        _set_affine(backbone.bn1, weights['stem.scale'],
                    weights['stem.shift'])
        for i, name in enumerate(backbone.res_layers):
            for j, block in enumerate(getattr(backbone, name)):
                for k, (act, conv, bn) in enumerate(block.conv_units()):
                    signs = unpack_signs(
                        weights[conv_key(i, j, k, 'bits')], conv.in_channels)
                    conv.weight.copy_(signs.permute(0, 3, 1, 2))
                    _set_affine(bn, weights[conv_key(i, j, k, 'scale')],
                                weights[conv_key(i, j, k, 'shift')])
                    if arch.get('sign_bias'):
                        act.bias.copy_(weights[conv_key(i, j, k,
                                                        'sign_bias')])
                if arch.get('block_act') == 'rprelu':
                    act = block.block_act
                    act.shift_in.bias.copy_(
                        weights[block_act_key(i, j, 'shift_in')])
                    act.prelu.weight.copy_(
                        weights[block_act_key(i, j, 'slope')])
                    act.shift_out.bias.copy_(
                        weights[block_act_key(i, j, 'shift_out')])
                if block.downsample is not None:
                    conv, bn = block.downsample[1], block.downsample[2]
                    conv.weight.copy_(weights[downsample_key(
                        i, j, 'weight')].view_as(conv.weight))
                    _set_affine(bn, weights[downsample_key(i, j, 'scale')],
                                weights[downsample_key(i, j, 'shift')])
    except (KeyError, RuntimeError) as e:  # a missing key, another shape
        raise CheckpointError(
            f'packed file {source}: its weights do not fit its architecture '
            f'({type(e).__name__}: {str(e).splitlines()[0]})') from None
    state = {f'backbone.{k}': v for k, v in backbone.state_dict().items()}
    fc_weight, fc_bias = weights['fc.weight'], weights['fc.bias']
    if tuple(fc_weight.shape) != (arch['num_classes'], arch['widths'][-1]):
        raise CheckpointError(
            f'packed file {source}: fc weight {tuple(fc_weight.shape)}, '
            'expected '
            f'({arch["num_classes"]}, {arch["widths"][-1]})')
    state['head.fc.weight'] = fc_weight.clone()
    state['head.fc.bias'] = fc_bias.clone()
    # which no key or shape tells: BiRealNet checks it when loading
    state['backbone.padding'] = backbone.padding
    return state

