from .hooks import (
    BNRetrainHook,
    FlipRatioHook,
    MeanLossOverRanksHook,
    StopOnInvalidLossHook,
    WeightDecayZeroHook,
)
from .loops import ResumableEpochBasedTrainLoop
from .param_groups import move_to_own_group, optimizer_built, tagged_groups

__all__ = [
    'BNRetrainHook', 'FlipRatioHook', 'MeanLossOverRanksHook',
    'ResumableEpochBasedTrainLoop', 'StopOnInvalidLossHook',
    'WeightDecayZeroHook',
    'move_to_own_group', 'optimizer_built', 'tagged_groups'
]
