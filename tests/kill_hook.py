"""A hook that SIGKILLs its own training process (for resume tests)."""
import os
import signal

from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS


@HOOKS.register_module()
class KillAtIterHook(Hook):
    """SIGKILL the process after iteration ``at_iter`` (1-based) has been
    trained and checkpointed: nothing gets to clean up, as in a crash."""

    priority = 'LOWEST'  # after CheckpointHook has saved this iteration

    def __init__(self, at_iter: int) -> None:
        self.at_iter = at_iter

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        if runner.iter + 1 == self.at_iter:
            os.kill(os.getpid(), signal.SIGKILL)
