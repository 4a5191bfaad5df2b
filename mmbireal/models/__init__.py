from .activations import LeakyClip
from .backbones import BiRealNet
from .binarizers import (
                         ACT_BINARIZERS,
                         WEIGHT_BINARIZERS,
                         approx_sign,
                         get_act_binarizer,
                         get_weight_binarizer,
                         magnitude_aware,
                         scaled_sign,
                         sign,
                         ste,
)
from .binary_conv import BinaryConv2d

__all__ = [
                         'ACT_BINARIZERS',
                         'WEIGHT_BINARIZERS',
                         'BiRealNet',
                         'BinaryConv2d',
                         'LeakyClip',
                         'approx_sign',
                         'get_act_binarizer',
                         'get_weight_binarizer',
                         'magnitude_aware',
                         'scaled_sign',
                         'sign',
                         'ste'
]
