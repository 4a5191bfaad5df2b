from .hooks import (
    BNRetrainHook,
    FlipRatioHook,
    MeanLossOverRanksHook,
    StopOnInvalidLossHook,
    WeightDecayZeroHook,
)
from .loops import ResumableEpochBasedTrainLoop
from .optimizers import BinaryOptimWrapperConstructor
from .param_groups import (
    binary_latent_weights,
    binary_weight_convs,
    non_bn_parameters,
)

__all__ = [
    'BNRetrainHook', 'BinaryOptimWrapperConstructor', 'FlipRatioHook',
    'MeanLossOverRanksHook', 'ResumableEpochBasedTrainLoop',
    'StopOnInvalidLossHook', 'WeightDecayZeroHook', 'binary_latent_weights',
    'binary_weight_convs', 'non_bn_parameters'
]
