from .activations import LeakyClip
from .backbones import BinaryResNet, BiRealNet
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
from .classifiers import DistillImageClassifier
from .react_parts import LearnableBias, RPReLU, build_channel_layer

__all__ = [
    'STE',
    'ActBinarizer',
    'ApproxSign',
    'BiRealNet',
    'Binarizer',
    'BinaryConv2d',
    'BinaryResNet',
    'DistillImageClassifier',
    'LeakyClip',
    'LearnableBias',
    'MagnitudeAware',
    'RPReLU',
    'ScaledSign',
    'Sign',
    'WeightBinarizer',
    'binary_convs',
    'build_binarizer',
    'build_channel_layer',
    'registered_binarizers'
]
