"""Convert a checkpoint of the authors' PyTorch Bi-Real Net to mmbireal.

The authors' training script saves ``{'epoch', 'state_dict',
'best_top1_acc', 'optimizer'}`` from ``nn.DataParallel`` (keys prefixed
``module.``), with each binary 3x3 weight stored flat as
``[C_out * C_in * 9, 1]``. The result is ``{'meta', 'state_dict'}`` for
the ``ImageClassifier`` of ``configs/birealnet/bireal{18,34}_*_in1k.py``
(``backbone.*`` and ``head.fc.*``); it holds only tensors and plain Python
values, so mmbireal's weights-only loader reads it. The optimizer state is
dropped. A classifier with other than 1000 classes is converted as it is
(set ``model.head.num_classes`` to load it).

Their weights use ``alpha * sign(W)`` with ``alpha`` detached (our
``scaled_sign``); in eval mode ``magnitude_aware`` computes the same
forward pass, so the binary-training configs give the same logits; the
one exception is a latent binary weight of exactly 0, which their
``torch.sign`` maps to 0 and our binarizers to +1 (the converter counts
them in ``meta['zero_binary_weights']`` and warns).

Usage::

    python tools/model_converters/bireal_official_to_mmbireal.py \\
        SRC DST [--depth 18|34]

Any problem (unreadable file, other layout, missing/unexpected keys, wrong
shapes) ends with one line ``error: ...`` naming SRC and exit status 2.
"""
import argparse
import numbers
import os.path as osp
import re
from collections import OrderedDict
from typing import Any, Dict, List, Optional, Sequence, Tuple

from torch import Tensor

from mmbireal.utils import (
    CheckpointError,
    atomic_torch_save,
    load_checkpoint_file,
)
from mmbireal.utils.launch import fail

# blocks (= binary 3x3 convs) per stage
STAGE_BLOCKS = {18: (4, 4, 4, 4), 34: (6, 8, 12, 6)}
STEM_CHANNELS = 64
STAGE_CHANNELS = (64, 128, 256, 512)
BN_PARAMS = ('weight', 'bias', 'running_mean', 'running_var',
             'num_batches_tracked')
BINARY_KEY = re.compile(r'^layer([1-4])\.(\d+)\.binary_conv\.weights$')

Shape = Tuple[int, ...]
# source key -> (target key, accepted source shapes, target shape)
Layout = Dict[str, Tuple[str, Tuple[Shape, ...], Shape]]


class ConversionError(ValueError):
    """A checkpoint that does not have the authors' Bi-Real Net layout."""


def _strip_prefix(state_dict: Dict[str, Any]) -> Dict[str, Any]:
    """Drop the ``module.`` prefix ``nn.DataParallel`` adds to every key."""
    return {(k[len('module.'):] if k.startswith('module.') else k): v
            for k, v in state_dict.items()}


def source_state_dict(checkpoint: Any) -> Dict[str, Any]:
    """The model weights of an authors' checkpoint, without ``module.``.

    A bare state dict (a mapping of names to tensors) is accepted too.
    """
    if isinstance(checkpoint, dict) and isinstance(
            checkpoint.get('state_dict'), dict):
        state_dict = checkpoint['state_dict']
    elif isinstance(checkpoint, dict) and checkpoint and all(
            isinstance(v, Tensor) for v in checkpoint.values()):
        state_dict = checkpoint
    else:
        raise ConversionError('it holds no state_dict (expected a dict with '
                              "'state_dict' or a mapping of tensors)")
    return _strip_prefix(state_dict)


def _describe(keys: Sequence[str], limit: int = 4) -> str:
    shown = ', '.join(keys[:limit])
    return shown + (f', ... ({len(keys)} in all)' if len(keys) > limit
                    else '')


def infer_depth(state_dict: Dict[str, Any],
                depth: Optional[int] = None) -> int:
    """Depth from the number of binary convs per stage (checks ``depth``)."""
    counts = [0, 0, 0, 0]
    for key in state_dict:
        found = BINARY_KEY.match(key)
        if found:
            stage = int(found.group(1)) - 1
            counts[stage] = max(counts[stage], int(found.group(2)) + 1)
    blocks = tuple(counts)
    if not any(blocks):
        raise ConversionError(
            "not the layout of the authors' Bi-Real Net: no "
            'layer*.*.binary_conv.weights keys (found '
            f'{_describe(sorted(state_dict), 3)})')
    if depth is not None:
        if blocks != STAGE_BLOCKS[depth]:
            raise ConversionError(
                f'it has {blocks} blocks per stage, --depth {depth} '
                f'expects {STAGE_BLOCKS[depth]}')
        return depth
    for candidate, expected in STAGE_BLOCKS.items():
        if blocks == expected:
            return candidate
    raise ConversionError(
        f'its {blocks} blocks per stage match neither Bi-Real-18 '
        f'{STAGE_BLOCKS[18]} nor Bi-Real-34 {STAGE_BLOCKS[34]}')


def _add_bn(layout: Layout, src: str, dst: str, channels: int) -> None:
    for name in BN_PARAMS:
        shape = () if name == 'num_batches_tracked' else (channels, )
        layout[f'{src}.{name}'] = (f'{dst}.{name}', (shape, ), shape)


def expected_layout(depth: int, num_classes: int = 1000) -> Layout:
    """Every source key of a depth-``depth`` model, mapped to ours."""
    layout: Layout = OrderedDict()
    stem = (STEM_CHANNELS, 3, 7, 7)
    layout['conv1.weight'] = ('backbone.conv1.weight', (stem, ), stem)
    _add_bn(layout, 'bn1', 'backbone.bn1', STEM_CHANNELS)
    in_channels = STEM_CHANNELS
    for s, (num_blocks, out_channels) in enumerate(
            zip(STAGE_BLOCKS[depth], STAGE_CHANNELS), 1):
        for i in range(num_blocks):
            src, dst = f'layer{s}.{i}', f'backbone.layer{s}.{i}'
            shape = (out_channels, in_channels, 3, 3)
            flat = (out_channels * in_channels * 9, 1)
            layout[f'{src}.binary_conv.weights'] = (f'{dst}.conv.weight',
                                                    (flat, shape), shape)
            _add_bn(layout, f'{src}.bn1', f'{dst}.bn', out_channels)
            if i == 0 and s > 1:
                shape = (out_channels, in_channels, 1, 1)
                layout[f'{src}.downsample.1.weight'] = (
                    f'{dst}.downsample.1.weight', (shape, ), shape)
                _add_bn(layout, f'{src}.downsample.2',
                        f'{dst}.downsample.2', out_channels)
            in_channels = out_channels
    fc = (num_classes, in_channels)
    layout['fc.weight'] = ('head.fc.weight', (fc, ), fc)
    layout['fc.bias'] = ('head.fc.bias', ((num_classes, ), ),
                         (num_classes, ))
    return layout


def convert_state_dict(state_dict: Dict[str, Any],
                       depth: Optional[int] = None
                       ) -> Tuple['OrderedDict[str, Tensor]', int]:
    """Map an authors' state dict (no ``module.``) to mmbireal's keys.

    Returns:
        The converted state dict and the depth.

    Raises:
        ConversionError: other layout, missing or unexpected keys, a value
            that is not a tensor, or a wrong shape.
    """
    depth = infer_depth(state_dict, depth)
    fc = state_dict.get('fc.weight')
    num_classes = fc.shape[0] if isinstance(fc, Tensor) and fc.dim() else 1000
    layout = expected_layout(depth, num_classes)
    missing = [k for k in layout if k not in state_dict]
    if missing:
        raise ConversionError(f'missing {len(missing)} key(s) of '
                              f'Bi-Real-{depth}: {_describe(missing)}')
    unexpected = [k for k in state_dict if k not in layout]
    if unexpected:
        raise ConversionError(f'{len(unexpected)} unexpected key(s) for '
                              f'Bi-Real-{depth}: {_describe(unexpected)}')
    converted: OrderedDict[str, Tensor] = OrderedDict()
    for src, (dst, accepted, shape) in layout.items():
        value = state_dict[src]
        if not isinstance(value, Tensor):
            raise ConversionError(
                f'{src} is a {type(value).__name__}, not a tensor')
        if tuple(value.shape) not in accepted:
            raise ConversionError(
                f'{src} has shape {list(value.shape)}, expected ' +
                ' or '.join(str(list(a)) for a in accepted))
        # the flat [C_out * C_in * 9, 1] weights are row-major views
        converted[dst] = value.detach().reshape(shape).clone()
    return converted, depth


def _plain(value: Any) -> Any:
    """A one-element tensor / numpy scalar as a Python number, else None."""
    if isinstance(value, Tensor) and value.numel() != 1:
        return None
    if hasattr(value, 'item') and not isinstance(value, numbers.Number):
        try:
            value = value.item()
        except (TypeError, ValueError):
            return None
    if isinstance(value, bool) or not isinstance(value, numbers.Number):
        return None
    return int(value) if isinstance(value, numbers.Integral) else float(
        value)


def convert_checkpoint(checkpoint: Any,
                       depth: Optional[int] = None,
                       source: str = '') -> Dict[str, Any]:
    """The mmbireal checkpoint ``{'meta', 'state_dict'}`` of a loaded one."""
    state_dict, depth = convert_state_dict(
        source_state_dict(checkpoint), depth)
    meta: Dict[str, Any] = dict(
        converted_from=osp.basename(source),
        source_format="authors' PyTorch Bi-Real Net",
        depth=depth,
        num_classes=state_dict['head.fc.bias'].shape[0])
    # torch.sign(0) = 0 in the authors' code, where our binarizers give +1
    # (a 1-bit weight cannot be 0): such weights change the logits a bit.
    meta['zero_binary_weights'] = sum(
        int((v == 0).sum()) for k, v in state_dict.items()
        if k.endswith('.conv.weight'))
    if isinstance(checkpoint, dict):
        for key in ('epoch', 'best_top1_acc'):
            value = _plain(checkpoint.get(key))
            if value is not None:
                meta[key] = value
    return dict(meta=meta, state_dict=state_dict)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Convert the authors' PyTorch Bi-Real Net checkpoint "
        'to an mmbireal (MMPretrain ImageClassifier) checkpoint')
    parser.add_argument('src', help="the authors' checkpoint")
    parser.add_argument('dst', help='where to write the converted one')
    parser.add_argument(
        '--depth',
        type=int,
        choices=sorted(STAGE_BLOCKS),
        help='18 or 34; inferred from the number of blocks if omitted')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    if osp.abspath(args.src) == osp.abspath(args.dst):
        fail(f'DST {args.dst} is SRC; refusing to overwrite the source')
    try:
        checkpoint = load_checkpoint_file(args.src, map_location='cpu')
    except (CheckpointError, FileNotFoundError) as e:
        fail(str(e))
    try:
        result = convert_checkpoint(checkpoint, args.depth, args.src)
    except ConversionError as e:
        fail(f'cannot convert {args.src}: {e}')
    try:
        atomic_torch_save(result, args.dst)
    except CheckpointError as e:
        fail(str(e))
    meta = result['meta']
    extra = ''.join(f', {k} {meta[k]:.6g}'
                    for k in ('epoch', 'best_top1_acc') if k in meta)
    print(f'converted {args.src} (Bi-Real-{meta["depth"]}{extra}) -> '
          f'{args.dst}: {len(result["state_dict"])} tensors')
    if meta['zero_binary_weights']:
        print(f'warning: {meta["zero_binary_weights"]} binary weight(s) are '
              "exactly 0: the authors' sign gives 0 there, mmbireal +1, so "
              'the logits differ slightly')


if __name__ == '__main__':
    main()
