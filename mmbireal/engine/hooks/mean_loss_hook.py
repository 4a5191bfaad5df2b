"""Log losses averaged over all ranks, not rank 0's share alone."""
from typing import Optional

import torch
from mmengine.dist import all_reduce, get_world_size
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS


@HOOKS.register_module()
class MeanLossOverRanksHook(Hook):
    """Replace each logged loss by its mean over all ranks.

    mmengine logs every process's own losses, so the curve of a DDP run is
    rank 0's share of the batch: noisier than, and not comparable with, one
    process training on the same total batch. This hook all-reduces the
    scalar outputs of every training iteration (one small all-reduce)
    before :class:`RuntimeInfoHook` records them, so N processes x B images
    log what one process x N*B images would (exactly so for per-sample mean
    losses and equal batches). A NaN on one rank then reaches every rank, so
    :class:`StopOnInvalidLossHook` stops them all instead of leaving the
    others waiting in the next all-reduce. Without distribution it does
    nothing.

    Example:
        >>> default_hooks = dict(mean_loss=dict(type='MeanLossOverRanksHook'))
    """

    priority = 'HIGHEST'  # before RuntimeInfoHook (VERY_HIGH) logs them

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch: Optional[dict] = None,
                         outputs: Optional[dict] = None) -> None:
        if not outputs or get_world_size() == 1:
            return
        keys = [key for key, value in outputs.items()
                if isinstance(value, torch.Tensor) and value.numel() == 1]
        if not keys:
            return
        values = torch.stack(
            [outputs[key].detach().float().reshape(()) for key in keys])
        all_reduce(values, op='mean')
        for key, value in zip(keys, values):
            outputs[key] = value
