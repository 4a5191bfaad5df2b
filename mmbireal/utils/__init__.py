from .checkpoint import (
                         CheckpointError,
                         checkpoint_safe_globals,
                         install_safe_checkpoint_loader,
                         load_checkpoint_file,
)

__all__ = [
    'CheckpointError', 'checkpoint_safe_globals',
    'install_safe_checkpoint_loader', 'load_checkpoint_file'
]
