"""What the hooks on Bi-Real Net's parameter groups share."""
from typing import List

import torch
from mmengine.hooks import Hook
from mmengine.runner import Runner

from mmbireal.utils import InputError

from ..param_groups import (
    GROUP_TAG,
    all_param_groups,
    groups_holding,
)


class ParamGroupCheckHook(Hook):
    """Check that chosen parameters have groups with fixed settings.

    :class:`~mmbireal.engine.optimizers.BinaryOptimWrapperConstructor`
    makes the groups; a subclass names the parameters, the settings and the
    constructor switch that gives them. Subclasses call
    :meth:`check_groups` in ``before_run`` (before a resumed state is
    loaded): every such parameter must sit in a tagged group with those
    settings, else the run stops with a line naming the config entry to
    add. Before each iteration the settings are compared, not set: a
    scheduler that scales lr or decay keeps 0 at 0, one that moves it
    (``eta_min``, ``OneCycleLR``...) stops the run before the step.
    """

    priority = 'VERY_HIGH'
    #: what the parameters are, for messages
    WHAT = ''
    #: the group settings they must keep, e.g. ``dict(weight_decay=0.0)``
    SETTINGS: dict = {}
    #: the ``paramwise_cfg`` switch of the constructor that gives them
    SWITCH = ''

    def __init__(self) -> None:
        self._groups: List[dict] = []

    def watched(self, model: torch.nn.Module) -> List[torch.nn.Parameter]:
        """The parameters whose groups are checked."""
        raise NotImplementedError

    @property
    def _name(self) -> str:
        return type(self).__name__

    def _wrong(self, group: dict) -> dict:
        return {
            k: group.get(k) for k, v in self.SETTINGS.items()
            if group.get(k) != v
        }

    def check_groups(self, runner: Runner) -> List[torch.nn.Parameter]:
        """Raise :class:`InputError` unless the groups are right; return
        the watched parameters."""
        params = self.watched(runner.model)
        groups = groups_holding(
            all_param_groups(runner.optim_wrapper), params)
        if any(GROUP_TAG not in g or self._wrong(g) for g in groups):
            settings = ', '.join(f'{k}={v}' for k, v in self.SETTINGS.items())
            raise InputError(
                f'{self._name}: the {self.WHAT} have no optimizer group of '
                f'their own with {settings}; add to the config: optim_wrapper'
                " = dict(constructor='BinaryOptimWrapperConstructor', "
                f'paramwise_cfg=dict({self.SWITCH}=True))')
        return params

    def before_train(self, runner: Runner) -> None:
        # after load_or_resume, which replaces the group dicts
        self._groups = groups_holding(
            all_param_groups(runner.optim_wrapper), self.watched(runner.model))

    def before_train_iter(self, runner: Runner, batch_idx: int,
                          data_batch=None) -> None:
        for group in self._groups:
            wrong = self._wrong(group)
            if wrong:
                moved = ', '.join(f'{k}={v}' for k, v in wrong.items())
                raise InputError(
                    f'{self._name}: the {self.WHAT} got {moved} (iteration '
                    f'{runner.iter + 1}), from a parameter scheduler or a '
                    'resumed optimizer state; use schedulers that scale the '
                    'value (ConstantLR, MultiStepLR, LinearLR, ...) with '
                    'eta_min=0, and resume from a checkpoint of this config')
