"""Zero weight decay on the latent weights of binary convolutions."""
from typing import List

import torch
from mmengine.runner import Runner
from mmpretrain.registry import HOOKS

from ..param_groups import (
    GROUP_SETTINGS,
    all_param_groups,
    binary_latent_weights,
    groups_holding,
    optimizer_built,
)
from .param_group_check import ParamGroupCheckHook


@HOOKS.register_module()
class WeightDecayZeroHook(ParamGroupCheckHook):
    """Guarantee ``weight_decay=0`` on binary latent weights.

    Bi-Real Net trains with no weight decay: decay pulls latent weights to
    0, where their sign flips at random. A config that inherits a schedule
    with decay keeps it for the real-valued layers; the binary latent
    weights get optimizer groups of their own with decay 0 from
    :class:`~mmbireal.engine.optimizers.BinaryOptimWrapperConstructor`
    (``paramwise_cfg=dict(binary_no_decay=True)``), built before the
    parameter schedulers and a resumed optimizer state see the groups.
    This hook checks that they have them (the run stops with the config
    line to add if not), logs them and the other groups' decay, and stops
    the run if a scheduler moves their decay away from 0.

    Example:
        >>> optim_wrapper = dict(
        ...     optimizer=dict(type='SGD', lr=0.1, weight_decay=1e-4),
        ...     constructor='BinaryOptimWrapperConstructor',
        ...     paramwise_cfg=dict(binary_no_decay=True))
        >>> custom_hooks = [dict(type='WeightDecayZeroHook')]
    """

    WHAT = 'binary latent weights'
    SWITCH = 'binary_no_decay'
    SETTINGS = GROUP_SETTINGS[SWITCH]

    def watched(self, model: torch.nn.Module) -> List[torch.nn.Parameter]:
        return binary_latent_weights(model)

    def before_run(self, runner: Runner) -> None:
        if not optimizer_built(runner):  # test/val-only runs
            return
        params = self.check_groups(runner)
        groups = all_param_groups(runner.optim_wrapper)
        ours = {id(g) for g in groups_holding(groups, params)}
        others = sorted(
            {g.get('weight_decay', 0)
             for g in groups if id(g) not in ours})
        # the constructor set the decay; this hook only checked it
        runner.logger.info(
            f'WeightDecayZeroHook: {len(params)} binary latent weights '
            f'({sum(p.numel() for p in params):,} values) are in a '
            'weight_decay=0 group (set by BinaryOptimWrapperConstructor); '
            f"other groups' decay: {others}")
