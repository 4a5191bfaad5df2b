from .bn_retrain_hook import BNRetrainHook
from .flip_ratio_hook import FlipRatioHook
from .invalid_loss_hook import StopOnInvalidLossHook
from .iter_checkpoint_hook import IterCheckpointHook
from .mean_loss_hook import MeanLossOverRanksHook
from .visualization_hook import GrayAwareVisualizationHook
from .weight_decay_zero_hook import WeightDecayZeroHook

__all__ = [
    'BNRetrainHook', 'FlipRatioHook', 'GrayAwareVisualizationHook',
    'IterCheckpointHook',
    'MeanLossOverRanksHook',
    'StopOnInvalidLossHook', 'WeightDecayZeroHook'
]
