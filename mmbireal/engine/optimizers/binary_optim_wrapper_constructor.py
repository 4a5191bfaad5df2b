"""An optimizer-wrapper constructor with Bi-Real Net's parameter groups."""
from typing import Callable, List, Optional, Tuple

import torch
from mmengine.optim import DefaultOptimWrapperConstructor, OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS, OPTIMIZERS
from mmpretrain.registry import OPTIM_WRAPPER_CONSTRUCTORS

from mmbireal.utils import InputError

from ..param_groups import (
    FROZEN_TAG,
    GROUP_SETTINGS,
    GROUP_TAG,
    NO_DECAY_TAG,
    binary_latent_weights,
    non_bn_parameters,
    unwrap,
)

# paramwise_cfg switch -> (group tag, parameters, settings of their groups),
# applied in this order: a parameter keeps the first group it is given
RULES: Tuple[Tuple[str, str, Callable, dict], ...] = (
    ('bn_only', FROZEN_TAG, non_bn_parameters, GROUP_SETTINGS['bn_only']),
    ('binary_no_decay', NO_DECAY_TAG, binary_latent_weights,
     GROUP_SETTINGS['binary_no_decay']),
)


def _split_off(groups: List[dict], params: List[torch.nn.Parameter],
               tag: str, settings: dict) -> None:
    """Give ``params`` groups tagged ``tag`` with ``settings`` overridden.

    A group holding only such parameters is changed in place; from a mixed
    group they are split off into a copy of it, appended at the end (so a
    single group becomes ``[others, tagged]``). Tagged groups are left
    alone.
    """
    wanted = {id(p) for p in params}
    for group in list(groups):
        if GROUP_TAG in group:
            continue
        mine = [p for p in group['params'] if id(p) in wanted]
        if not mine:
            continue
        if len(mine) == len(group['params']):
            target = group
        else:
            group['params'] = [
                p for p in group['params'] if id(p) not in wanted
            ]
            target = {k: v for k, v in group.items() if k != 'params'}
            target['params'] = mine
            groups.append(target)
        target.update(settings)
        target[GROUP_TAG] = tag


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class BinaryOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """Build the optimizer with Bi-Real Net's parameter groups.

    Two ``paramwise_cfg`` switches put parameters into optimizer groups of
    their own, tagged ``mmbireal_group`` (the tag is saved with the
    optimizer state), and a third scales one of them:

    - ``binary_no_decay`` (bool): the latent weights of binary convs get
      ``weight_decay=0`` (group ``'binary_weights_no_decay'``), whatever
      decay the optimizer has: decay pulls them to 0, where their sign
      flips at random. ``WeightDecayZeroHook`` checks and logs it.
    - ``bn_only`` (bool): every parameter outside BatchNorm gets ``lr=0``
      and ``weight_decay=0`` (group ``'bn_retrain_frozen'``), for the
      BN-retrain step; ``BNRetrainHook`` checks it. It includes the binary
      weights, so ``binary_no_decay`` then changes nothing more.
    - ``binary_lr_mult`` (float): multiplies the lr of the binary-weight
      group (needs ``binary_no_decay``). The magnitude-aware gradient
      scales the latent weights' gradients by their channel's
      ``alpha = mean|W|``; ``1 / mean(alpha)`` gives them steps of the size
      an unscaled gradient would (``bireal18_lr-alpha_1xb64_fmnist.py``).

    The groups exist before the parameter schedulers record their starting
    values and before a resumed optimizer state is loaded, so a scheduler
    that scales lr or decay keeps 0 at 0, and a resumed run has the layout
    of the run that saved it. Without other ``paramwise_cfg`` keys the
    remaining parameters stay in one group (``[others, tagged]``, the layout
    of earlier mmbireal checkpoints); other keys (``norm_decay_mult``,
    ``custom_keys``, ...) work as in
    :class:`mmengine.optim.DefaultOptimWrapperConstructor`, one group per
    parameter, and the switches then override those groups.

    Args:
        optim_wrapper_cfg (dict): The optimizer wrapper config, with its
            ``optimizer``.
        paramwise_cfg (dict, optional): The switches above and mmengine's
            parameter-wise options. Defaults to None.

    Example:
        >>> optim_wrapper = dict(
        ...     optimizer=dict(type='SGD', lr=0.01, momentum=0.9,
        ...                    weight_decay=1e-4),
        ...     constructor='BinaryOptimWrapperConstructor',
        ...     paramwise_cfg=dict(binary_no_decay=True))
    """

    def __init__(self,
                 optim_wrapper_cfg: dict,
                 paramwise_cfg: Optional[dict] = None) -> None:
        paramwise_cfg = dict(paramwise_cfg or {})
        self.switches = {}
        for name, *_ in RULES:
            value = paramwise_cfg.pop(name, False)
            if not isinstance(value, bool):
                raise InputError(f'paramwise_cfg.{name} must be True or '
                                 f'False, got {value!r}')
            self.switches[name] = value
        self.binary_lr_mult = paramwise_cfg.pop('binary_lr_mult', 1.0)
        if isinstance(self.binary_lr_mult, bool) or not isinstance(
                self.binary_lr_mult, (int, float)) or self.binary_lr_mult <= 0:
            raise InputError(
                'paramwise_cfg.binary_lr_mult must be a positive number, got '
                f'{self.binary_lr_mult!r} (run_study.sh sets it to 1 / mean '
                'alpha: tools/analysis_tools/binary_weight_stats.py)')
        if self.binary_lr_mult != 1.0 and not self.switches['binary_no_decay']:
            raise InputError('paramwise_cfg.binary_lr_mult needs '
                             'binary_no_decay=True (the binary weights\' '
                             'own group)')
        super().__init__(optim_wrapper_cfg, paramwise_cfg)

    def __call__(self, model: torch.nn.Module) -> OptimWrapper:
        model = unwrap(model)
        groups: List[dict] = []
        if self.paramwise_cfg:  # mmengine's options: a group per parameter
            self.add_params(groups, model)
        else:
            groups.append(dict(params=list(model.parameters())))
        for name, tag, select, settings in RULES:
            if self.switches[name]:
                _split_off(groups, select(model), tag, settings)
        optimizer = OPTIMIZERS.build(dict(self.optimizer_cfg, params=groups))
        # after the build, so the optimizer's default lr counts too
        for group in optimizer.param_groups:
            if group.get(GROUP_TAG) == NO_DECAY_TAG:
                group['lr'] *= self.binary_lr_mult
        wrapper_cfg = dict(self.optim_wrapper_cfg)
        wrapper_cfg.setdefault('type', 'OptimWrapper')
        return OPTIM_WRAPPERS.build(
            wrapper_cfg, default_args=dict(optimizer=optimizer))
