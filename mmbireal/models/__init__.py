from .activations import LeakyClip
from .backbones import BiRealNet
from .binarizers import (
    STE,
    ActBinarizer,
    ApproxSign,
    Binarizer,
    MagnitudeAware,
    ScaledSign,
    Sign,
    WeightBinarizer,
    build_binarizer,
    registered_binarizers,
)
from .binary_conv import BinaryConv2d, binary_convs

__all__ = [
    'STE',
    'ActBinarizer',
    'ApproxSign',
    'BiRealNet',
    'Binarizer',
    'BinaryConv2d',
    'LeakyClip',
    'MagnitudeAware',
    'ScaledSign',
    'Sign',
    'WeightBinarizer',
    'binary_convs',
    'build_binarizer',
    'registered_binarizers'
]
