"""Stop training at the first NaN or infinite loss, and say where."""
from typing import Optional

import torch
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS

from mmbireal.utils.errors import InvalidLossError


@HOOKS.register_module()
class StopOnInvalidLossHook(Hook):
    """Raise :class:`InvalidLossError` naming the iteration of a NaN/inf loss.

    It runs before the checkpoint hook, so no checkpoint with broken weights
    is written: the last good one stays for ``--resume``. (mmengine's
    ``CheckInvalidLossHook`` only checks every ``interval`` iterations and
    does not say where the loss broke.)

    Example:
        >>> default_hooks = dict(invalid_loss=dict(
        ...     type='StopOnInvalidLossHook'))
    """

    priority = 'ABOVE_NORMAL'

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch: Optional[dict] = None,
                         outputs: Optional[dict] = None) -> None:
        loss = (outputs or {}).get('loss')
        if loss is None or bool(torch.isfinite(loss).all()):
            return
        raise InvalidLossError(
            f'loss is {loss.item()} at iteration {runner.iter + 1} (epoch '
            f'{runner.epoch + 1}, batch {batch_idx + 1}): training stopped; '
            f'the checkpoints in {runner.work_dir} are kept (lower the lr or '
            'check the data, then train again with --resume)')
