"""Real 1-bit inference for trained Bi-Real Nets.

* :func:`export_packed` writes a classifier as 1 bit per binary weight with
  alpha and BN folded into a per-channel affine, real layers in fp32 and a
  small architecture description (``tools/deployment/export_binary.py``).
* :func:`load_packed` rebuilds it as an inference-only module whose binary
  convs run XOR + popcount on channel-packed bits in a C++ engine compiled
  on first use (:func:`get_engine`), or, without a compiler, in an exact
  PyTorch reference path.

Not imported by ``import mmbireal``: training never needs it.
"""
from .engine import (
    ConvOutput,
    EngineBuildError,
    NativeEngine,
    build_engine,
    engine_weight_layout,
    get_engine,
)
from .export import (
    ExportError,
    config_classes,
    export_packed,
    float_state_bytes,
    pack_classifier,
    preprocessing_meta,
)
from .images import prepare_image
from .packed_model import PackedBiRealNet, Prediction, load_packed
from .reference import (
    affine_epilogue,
    binary_conv3x3_torch,
    pack_signs_torch,
    sign_pm1,
    unpack_signs,
)

__all__ = [
    'ConvOutput', 'EngineBuildError', 'ExportError', 'NativeEngine',
    'PackedBiRealNet', 'Prediction', 'affine_epilogue', 'binary_conv3x3_torch',
    'build_engine', 'config_classes', 'engine_weight_layout', 'export_packed',
    'float_state_bytes', 'get_engine', 'load_packed', 'pack_classifier',
    'pack_signs_torch', 'prepare_image', 'preprocessing_meta', 'sign_pm1',
    'unpack_signs'
]
