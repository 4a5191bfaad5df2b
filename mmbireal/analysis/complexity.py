"""Parameters, FLOPs, BOPs, OPs and memory of (binary) networks.

The paper's efficiency measures (Bi-Real Net, Sec. 4.4):

* FLOPs -- real-valued multiply-accumulates (one MAC is one FLOP, mmengine's
  convention) of every real layer: stem conv, 1x1 downsample convs, fc, and
  the global average pool mmengine also counts;
* BOPs -- the multiply-accumulates of the binary convolutions, i.e. of every
  :class:`BinaryConv2d` that binarizes both its input and its weights;
* OPs = FLOPs + BOPs / 64;
* memory = binarized conv weights at 1 bit (their binarizer's ``bits``) +
  every other parameter at 32 bits.

Counting is mmengine's :class:`~mmengine.analysis.FlopAnalyzer` (a jit trace
with per-operator handles). BatchNorm is left out: it is folded into the
preceding conv at inference, and the paper's figures do not contain it.
Element-wise additions and max/avg pooling have no handle in mmengine and
are not counted either; :attr:`Complexity.uncounted_ops` lists them.
The trace attributes every operator to the modules that called it, so the
conv MACs inside a binary :class:`BinaryConv2d` are moved from FLOPs to BOPs.
"""
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.analysis import FlopAnalyzer, parameter_count
from mmengine.config import Config
from torch import Tensor

from mmbireal.apis import build_model
from mmbireal.datasets.transforms import transform_type
from mmbireal.models.binary_conv import BinaryConv2d, binary_convs
from mmbireal.utils.config import read_config
from mmbireal.utils.errors import InputError

#: One 64-bit word of XNOR + popcount does 64 binary MACs (the paper).
BOPS_PER_OP = 64
#: Bits per stored real parameter (binarized weights: their binarizer's).
REAL_BITS = 32


@dataclass(frozen=True)
class Complexity:
    """The paper's efficiency figures of one network at one input size.

    Attributes:
        params (int): Number of parameters.
        flops (int): Real-valued multiply-accumulates.
        bops (int): Binary (1-bit x 1-bit) multiply-accumulates.
        memory_bits (int): Storage of the parameters in bits.
        uncounted_ops (dict): Traced operators without a FLOP handle
            (e.g. ``aten::add``), with how often each occurred.
    """

    params: int
    flops: int
    bops: int
    memory_bits: int
    uncounted_ops: Dict[str, int] = field(default_factory=dict)

    @property
    def ops(self) -> float:
        """``FLOPs + BOPs / 64``."""
        return self.flops + self.bops / BOPS_PER_OP

    @property
    def memory_mbit(self) -> float:
        """Parameter storage in Mbit (1e6 bits)."""
        return self.memory_bits / 1e6

    def to_dict(self) -> Dict[str, Union[int, float]]:
        """The five figures, keyed ``params``, ``flops``, ``bops``, ``ops``
        and ``memory_mbit``."""
        return dict(
            params=self.params,
            flops=self.flops,
            bops=self.bops,
            ops=self.ops,
            memory_mbit=self.memory_mbit)


def is_binary_conv(module: nn.Module) -> bool:
    """Whether ``module`` is a binary x binary :class:`BinaryConv2d`.

    A :class:`BinaryConv2d` that leaves its input or its weight real
    multiplies real values, so its MACs are FLOPs.
    """
    return (isinstance(module, BinaryConv2d) and module.binarizes_input
            and module.binarizes_weight)


def _no_flops(inputs: List[Any], outputs: List[Any]) -> Counter:
    """Handle that counts an operator as free (folded at inference)."""
    return Counter()


def memory_bits(model: nn.Module) -> int:
    """Bits to store the parameters: binarized conv weights in their
    binarizer's bits (1), every other parameter at 32 bits (shared
    parameters once)."""
    # a binarized weight is stored in its bits whatever the activations are
    bits = {
        id(conv.weight): conv.weight_binarizer_obj.bits
        for _, conv in binary_convs(model) if conv.binarizes_weight
    }
    return sum(p.numel() * bits.get(id(p), REAL_BITS)
               for p in model.parameters())


def analyze_complexity(
        model: nn.Module, inputs: Union[Tensor, Tuple[Tensor, ...]]
) -> Complexity:
    """Count parameters, FLOPs, BOPs and memory of ``model(*inputs)``.

    The model is traced in eval mode (every module's mode is restored
    afterwards).
    For an MMPretrain ``ImageClassifier`` the trace runs
    ``forward(inputs, mode='tensor')``: backbone, neck and head.

    Args:
        model (nn.Module): The network.
        inputs (Tensor | tuple[Tensor]): Its input(s), batch size 1 for
            per-image figures.

    Returns:
        Complexity: The figures.
    """
    if isinstance(inputs, Tensor):
        inputs = (inputs, )
    analyzer = FlopAnalyzer(model, inputs)
    analyzer.set_op_handle('aten::batch_norm', _no_flops)
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        # Inference mode: BinaryConv2d then runs a plain aten convolution on
        # binarized tensors, which the trace sees (its training path is one
        # custom autograd function, opaque to the tracer).
        with torch.no_grad():
            total = int(analyzer.total())
    finally:
        for module, training in modes:  # exactly as before, module by module
            module.training = training
    per_module = analyzer.by_module_and_operator()
    # 'conv' is the name mmengine's handle gives aten::_convolution; a
    # module's counter holds what was traced inside its __call__.
    bops = sum(
        int(per_module[analyzer.canonical_module_name(name)]['conv'])
        for name, conv in binary_convs(model) if is_binary_conv(conv))
    return Complexity(
        params=int(parameter_count(model)['']),
        flops=total - bops,
        bops=bops,
        memory_bits=memory_bits(model),
        uncounted_ops=dict(analyzer.unsupported_ops()))


def _size_hw(size) -> Tuple[int, int]:
    """mmcv's ``int`` or ``(w, h)`` as ``(h, w)``."""
    if isinstance(size, int):
        return size, size
    width, height = size
    return int(height), int(width)


def config_test_pipeline(cfg: Config) -> list:
    """The transforms of the config's test dataset (``test_dataloader``),
    else its top-level ``test_pipeline``; ``[]`` if it has neither."""
    loader = cfg.get('test_dataloader') or {}
    return list((loader.get('dataset') or {}).get('pipeline')
                or cfg.get('test_pipeline') or [])


def pipeline_input_size(cfg: Config) -> Optional[Tuple[int, int]]:
    """``(H, W)`` of the images the config's test pipeline produces: the
    size set by its last ``CenterCrop`` (``crop_size``) or ``Resize``
    (``scale``); None if neither fixes it (e.g. ``ResizeEdge`` alone)."""
    size = None
    for transform in config_test_pipeline(cfg):
        if not isinstance(transform, dict):
            continue
        kind = transform_type(transform)
        key = {'CenterCrop': 'crop_size', 'Resize': 'scale'}.get(kind)
        if key and transform.get(key) is not None:
            size = _size_hw(transform[key])
    return size


def input_channels(cfg: Config) -> int:
    """Input channels of ``cfg.model`` (``backbone.in_channels``, else 3)."""
    backbone = cfg.model.get('backbone') or {}
    return int(backbone.get('in_channels', 3))


def config_complexity(config: Union[str, Config],
                      shape: Sequence[int] = (224, 224)) -> Complexity:
    """Build the model of a config and count it on one ``C x H x W`` image.

    Args:
        config (str | Config): Config or its path (``pkg::`` paths such as
            ``'mmpretrain::resnet/resnet18_8xb32_in1k.py'`` are accepted).
        shape (Sequence[int]): Input height and width. Defaults to
            ``(224, 224)``.

    Returns:
        Complexity: The figures.

    Raises:
        InputError: a shape that is not two positive sizes.
    """
    cfg = read_config(config) if isinstance(config, str) else config
    if len(shape) != 2 or any(int(s) <= 0 for s in shape):
        raise InputError(f'shape must be (H, W) > 0, got {tuple(shape)}')
    model = build_model(cfg)
    image = torch.randn(1, input_channels(cfg), *(int(s) for s in shape))
    return analyze_complexity(model, image)
