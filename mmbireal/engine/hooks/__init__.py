from .bn_retrain_hook import BNRetrainHook
from .weight_decay_zero_hook import WeightDecayZeroHook

__all__ = ['BNRetrainHook', 'WeightDecayZeroHook']
