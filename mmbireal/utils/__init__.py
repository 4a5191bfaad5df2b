from .checkpoint import (
    atomic_torch_save,
    check_checkpoint_fits,
    check_state_dict_fits,
    checkpoint_safe_globals,
    install_safe_checkpoint_loader,
    load_checkpoint_file,
    load_fitting_checkpoint,
    load_state_dict_file,
)
from .errors import CheckpointError, InputError, InvalidLossError

__all__ = [
    'CheckpointError', 'InputError', 'InvalidLossError',
    'atomic_torch_save', 'check_checkpoint_fits', 'check_state_dict_fits',
    'checkpoint_safe_globals', 'install_safe_checkpoint_loader',
    'load_checkpoint_file', 'load_fitting_checkpoint', 'load_state_dict_file'
]
