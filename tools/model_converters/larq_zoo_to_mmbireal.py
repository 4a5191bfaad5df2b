"""Convert larq-zoo's Keras Bi-Real Net weights (.h5) to mmbireal.

larq-zoo publishes ImageNet weights of its ``BiRealNet`` as the release
files ``birealnet_weights.h5`` (with the classifier) and
``birealnet_weights_notop.h5`` (without), release ``birealnet-v0.3.0``.
This reads such a Keras weights file with h5py (no TensorFlow needed;
``pip install mmbireal[convert]``) and writes ``{'meta', 'state_dict'}``
for ``configs/birealnet/bireal18_larq-zoo_in1k.py``: the same Bi-Real-18,
but with TensorFlow's ``'same'`` padding (``padding='tf_same'``) and BN
epsilon 1e-3, which that config sets.

Layers are told apart by their weights (a 7x7 kernel: the stem; 3x3: the
binary convs; 1x1: the downsample shortcuts; gamma/beta/moving statistics:
the BNs; a 2-D kernel with a bias: the classifier) and put in the order
larq-zoo's code creates them, which Keras numbers in their names
(``batch_normalization_7``): in a downsampling block the shortcut's 1x1 conv
and BN come before the binary conv and its BN. Keras kernels are HWIO, ours
OIHW; the dense kernel is transposed. Any width (larq-zoo's ``filters``) and
number of classes are accepted: ``meta`` names them.

If the file's sha256 is that of one of the two release files, the
converter says so; a file named like one of them whose sha256 differs is
refused (a truncated or altered download).

Usage::

    python tools/model_converters/larq_zoo_to_mmbireal.py WEIGHTS.h5 OUT.pth

Any problem (unreadable file, another layout) ends with one line
``error: ...`` naming what was found, and exit status 2.
"""
import argparse
import os.path as osp
import re
from collections import OrderedDict
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

from mmbireal.utils import CheckpointError, atomic_torch_save
from mmbireal.utils.launch import fail
from mmbireal.utils.paths import file_sha256

#: release file name -> its sha256 (larq-zoo's code, birealnet-v0.3.0)
RELEASE_SHA256 = {
    'birealnet_weights.h5':
    '6e6efac1584fcd60dd024198c87f42eb53b5ec719a5ca1f527e1fe7e8b997117',
    'birealnet_weights_notop.h5':
    '5148b61c0c2a1094bdef811f68bf4957d5ba5f83ad26437b7a4a6855441ab46b',
}
STAGE_BLOCKS = (4, 4, 4, 4)  # Bi-Real-18: binary 3x3 convs per stage
BN_WEIGHTS = {'gamma': 'weight', 'beta': 'bias',
              'moving_mean': 'running_mean',
              'moving_variance': 'running_var'}
_SUFFIX = re.compile(r'^(.*?)(?:_(\d+))?$')


class ConversionError(ValueError):
    """A file that is not larq-zoo's Bi-Real Net weights."""


def _text(value: Any) -> str:
    return value.decode('utf8') if isinstance(value, bytes) else str(value)


def read_keras_weights(path: str) -> List[Tuple[str, Dict[str, np.ndarray]]]:
    """``(layer name, {weight name without ':0': array})`` of every layer
    with weights, in the file's order. Reads what ``model.save_weights``
    writes (and the ``model_weights`` group of a whole-model .h5)."""
    import h5py
    try:
        f = h5py.File(path, 'r')
    except OSError as e:
        raise ConversionError(f'not an HDF5 file ({e})') from None
    with f:
        root = f['model_weights'] if 'model_weights' in f else f
        if 'layer_names' not in root.attrs:
            raise ConversionError('no Keras layer_names attribute: not a '
                                  'Keras weights file')
        layers = []
        for name in map(_text, root.attrs['layer_names']):
            group = root[name]
            weights = {}
            for weight in map(_text, group.attrs.get('weight_names', [])):
                # 'conv2d/kernel:0' -> 'kernel'
                key = weight.split('/')[-1].split(':')[0]
                weights[key] = np.asarray(group[weight])
            if weights:
                layers.append((name, weights))
        return layers


def _creation_order(layers: Sequence[Tuple[str, Dict[str, np.ndarray]]]):
    """The layers sorted by the number Keras appends to a name (none: 0):
    the order in which larq-zoo's code created them."""

    def key(item):
        found = _SUFFIX.match(item[0])
        return int(found.group(2) or 0)

    numbers = [key(item) for item in layers]
    if len(set(numbers)) != len(numbers):
        raise ConversionError('layer names do not number the layers '
                              f'({", ".join(n for n, _ in layers[:4])}...)')
    return sorted(layers, key=key)


def _kind(weights: Dict[str, np.ndarray]) -> str:
    if set(weights) == set(BN_WEIGHTS):
        return 'bn'
    kernel = weights.get('kernel')
    if kernel is not None and kernel.ndim == 4 and set(weights) == {
            'kernel'
    } and kernel.shape[0] == kernel.shape[1]:
        return f'conv{kernel.shape[0]}'
    if kernel is not None and kernel.ndim == 2 and set(weights) == {
            'kernel', 'bias'
    }:
        return 'dense'
    shapes = {k: list(v.shape) for k, v in weights.items()}
    raise ConversionError(f'a layer of unknown kind with weights {shapes}')


def _describe(groups: Dict[str, list]) -> str:
    return ', '.join(f'{len(groups[k])} {k}' for k in
                     ('conv7', 'conv3', 'conv1', 'bn', 'dense') if k in
                     groups) or 'no layers with weights'


def convert_layers(
    layers: Sequence[Tuple[str, Dict[str, np.ndarray]]]
) -> Tuple['OrderedDict[str, Tensor]', Dict[str, Any]]:
    """Map the Keras layers to mmbireal's state dict.

    Returns:
        The state dict and ``{'filters', 'num_classes'}`` (None without a
        classifier).

    Raises:
        ConversionError: another layout (layer counts or shapes).
    """
    groups: Dict[str, list] = {}
    for name, weights in layers:
        groups.setdefault(_kind(weights), []).append((name, weights))
    for kind in groups:
        groups[kind] = [w for _, w in _creation_order(groups[kind])]
    expected = {'conv7': 1, 'conv3': sum(STAGE_BLOCKS), 'conv1': 3,
                'bn': 1 + sum(STAGE_BLOCKS) + 3}
    counts = {k: len(groups.get(k, [])) for k in expected}
    num_dense = len(groups.get('dense', []))
    if counts != expected or num_dense > 1:
        raise ConversionError(
            "not larq-zoo's Bi-Real-18: it has " + _describe(groups) +
            ' (layers with a 7x7, 3x3, 1x1 kernel, BNs, dense); expected 1 '
            f'conv7, {expected["conv3"]} conv3, 3 conv1, {expected["bn"]} '
            'bn and 0 or 1 dense')
    stem = groups['conv7'][0]['kernel']
    filters = stem.shape[3]
    state: OrderedDict[str, Tensor] = OrderedDict()
    bns = iter(groups['bn'])
    convs = iter(groups['conv3'])
    shortcuts = iter(groups['conv1'])

    def kernel(weights, name, shape):
        value = weights['kernel']
        if tuple(value.shape) != shape:
            raise ConversionError(f'{name} kernel has shape '
                                  f'{list(value.shape)}, expected '
                                  f'{list(shape)} (HWIO, filters {filters})')
        # HWIO -> OIHW
        return torch.from_numpy(np.ascontiguousarray(
            value.transpose(3, 2, 0, 1))).float()

    def bn(prefix, channels):
        weights = next(bns)
        for src, dst in BN_WEIGHTS.items():
            value = weights[src]
            if value.shape != (channels, ):
                raise ConversionError(
                    f'the BN of {prefix} has {src} of shape '
                    f'{list(value.shape)}, expected [{channels}]')
            state[f'{prefix}.{dst}'] = torch.from_numpy(
                np.array(value, dtype=np.float32))
        state[f'{prefix}.num_batches_tracked'] = torch.tensor(0)

    state['backbone.conv1.weight'] = kernel(groups['conv7'][0], 'the stem',
                                            (7, 7, 3, filters))
    bn('backbone.bn1', filters)
    channels = filters
    for s, num_blocks in enumerate(STAGE_BLOCKS):
        width = filters * 2**s
        for j in range(num_blocks):
            prefix = f'backbone.layer{s + 1}.{j}'
            if channels != width:  # created first: avg-pool, 1x1, BN
                state[f'{prefix}.downsample.1.weight'] = kernel(
                    next(shortcuts), f'{prefix}.downsample',
                    (1, 1, channels, width))
                bn(f'{prefix}.downsample.2', width)
            state[f'{prefix}.conv.weight'] = kernel(next(convs), prefix,
                                                    (3, 3, channels, width))
            bn(f'{prefix}.bn', width)
            channels = width
    num_classes = None
    if num_dense:
        dense = groups['dense'][0]
        weight, bias = dense['kernel'], dense['bias']
        if weight.shape[0] != channels or bias.shape != (weight.shape[1], ):
            raise ConversionError(
                f'the dense layer has kernel {list(weight.shape)} and bias '
                f'{list(bias.shape)}, expected [{channels}, classes] and '
                '[classes]')
        num_classes = int(weight.shape[1])
        state['head.fc.weight'] = torch.from_numpy(
            np.ascontiguousarray(weight.T)).float()
        state['head.fc.bias'] = torch.from_numpy(np.array(
            bias, dtype=np.float32))
    return state, dict(filters=int(filters), num_classes=num_classes)


def check_release(path: str, digest: str) -> Optional[str]:
    """The release file whose sha256 is ``digest`` (None if none is).

    Raises:
        ConversionError: ``path`` is named like a release file but its
            sha256 differs.
    """
    for name, known in RELEASE_SHA256.items():
        if digest == known:
            return name
    name = osp.basename(path)
    if name in RELEASE_SHA256:
        raise ConversionError(
            f'its sha256 {digest} is not that of larq-zoo\'s {name} '
            f'({RELEASE_SHA256[name]}): a truncated or altered download?')
    return None


def convert_file(path: str) -> Dict[str, Any]:
    """The mmbireal checkpoint ``{'meta', 'state_dict'}`` of ``path``."""
    digest = file_sha256(path)
    release = check_release(path, digest)
    state_dict, info = convert_layers(read_keras_weights(path))
    meta = dict(
        converted_from=osp.basename(path),
        source_format="larq-zoo's Keras BiRealNet",
        sha256=digest,
        release_file=release,
        depth=18,
        padding='tf_same',
        **info)
    return dict(meta=meta, state_dict=state_dict)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Convert larq-zoo's Keras Bi-Real Net weights (.h5) to "
        'an mmbireal (MMPretrain ImageClassifier) checkpoint')
    parser.add_argument('src', help='birealnet_weights.h5 or '
                        'birealnet_weights_notop.h5 (or a file of the same '
                        'layout)')
    parser.add_argument('dst', help='where to write the converted one')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    if osp.abspath(args.src) == osp.abspath(args.dst):
        fail(f'DST {args.dst} is SRC; refusing to overwrite the source')
    if not osp.isfile(args.src):
        fail(f'{args.src} does not exist')
    try:
        import h5py  # noqa: F401
    except ImportError:
        fail('reading .h5 files needs h5py: pip install h5py (or '
             'pip install mmbireal[convert])')
    try:
        result = convert_file(args.src)
    except ConversionError as e:
        fail(f'cannot convert {args.src}: {e}')
    try:
        atomic_torch_save(result, args.dst)
    except CheckpointError as e:
        fail(str(e))
    meta = result['meta']
    if meta['release_file']:
        origin = (f"sha256 matches larq-zoo's {meta['release_file']} "
                  '(birealnet-v0.3.0)')
    else:
        origin = ("not one of larq-zoo's release files (sha256 "
                  f"{meta['sha256'][:12]}...): converted by its layout")
    head = (f"{meta['num_classes']} classes" if meta['num_classes'] else
            'no classifier (backbone only)')
    print(f'converted {args.src} (Bi-Real-18, filters {meta["filters"]}, '
          f'{head}; {origin}) -> {args.dst}: '
          f'{len(result["state_dict"])} tensors')


if __name__ == '__main__':
    main()
