from .bireal_net import (
    STEM_GEOMETRIES,
    BinaryBasicBlock,
    BinaryResBlock,
    BinaryResNet,
    BiRealBlock,
    BiRealNet,
    StemGeometry,
)

__all__ = [
    'STEM_GEOMETRIES', 'BiRealBlock', 'BiRealNet', 'BinaryBasicBlock',
    'BinaryResBlock', 'BinaryResNet', 'StemGeometry'
]
