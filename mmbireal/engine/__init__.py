from .hooks import BNRetrainHook, WeightDecayZeroHook
from .param_groups import move_to_own_group, optimizer_built, tagged_groups

__all__ = [
    'BNRetrainHook', 'WeightDecayZeroHook', 'move_to_own_group',
    'optimizer_built', 'tagged_groups'
]
