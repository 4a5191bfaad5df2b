"""The parameters Bi-Real Net trains differently, and their optimizer groups.

:class:`~mmbireal.engine.optimizers.BinaryOptimWrapperConstructor` gives
them groups of their own, tagged ``GROUP_TAG``, when it builds the optimizer:
before the parameter schedulers record the groups' starting values and
before a resumed optimizer state is loaded into them, so the group layout is
the same in the run that saves a checkpoint and in the run that resumes it.
The hooks find and check the groups with the functions here.
"""
from typing import List, Union

import torch
from mmengine.model import is_model_wrapper
from mmengine.optim import OptimWrapper, OptimWrapperDict
from mmengine.runner import Runner
from torch.nn.modules.batchnorm import _BatchNorm

from mmbireal.models import BinaryConv2d
from mmbireal.models.binary_conv import binary_convs

GROUP_TAG = 'mmbireal_group'
# binary latent weights, weight_decay 0 (WeightDecayZeroHook)
NO_DECAY_TAG = 'binary_weights_no_decay'
# every parameter outside BatchNorm, lr 0 and weight_decay 0 (BNRetrainHook)
FROZEN_TAG = 'bn_retrain_frozen'
# paramwise_cfg switch -> what its groups set: the constructor writes it,
# the hooks check it
GROUP_SETTINGS = {
    'bn_only': dict(lr=0.0, weight_decay=0.0),
    'binary_no_decay': dict(weight_decay=0.0),
}


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The model inside a DDP (or other mmengine) wrapper."""
    return model.module if is_model_wrapper(model) else model


def binary_weight_convs(model: torch.nn.Module) -> List[BinaryConv2d]:
    """The convolutions whose weights are binarized."""
    return [
        conv for _, conv in binary_convs(unwrap(model))
        if conv.binarizes_weight
    ]


def binary_latent_weights(
        model: torch.nn.Module) -> List[torch.nn.Parameter]:
    """The real-valued weights that binary convs binarize."""
    return [conv.weight for conv in binary_weight_convs(model)]


def non_bn_parameters(model: torch.nn.Module) -> List[torch.nn.Parameter]:
    """Every parameter not owned by a BatchNorm layer."""
    return [
        p for m in unwrap(model).modules() if not isinstance(m, _BatchNorm)
        for p in m.parameters(recurse=False)
    ]


def optimizer_built(runner: Runner) -> bool:
    """False when the runner only tests (its optimizer is still a config)."""
    return isinstance(runner.optim_wrapper, (OptimWrapper, OptimWrapperDict))


def all_param_groups(
        optim_wrapper: Union[OptimWrapper, OptimWrapperDict]) -> List[dict]:
    """The param groups of every optimizer of ``optim_wrapper``."""
    if isinstance(optim_wrapper, OptimWrapperDict):
        wrappers = list(optim_wrapper.values())
    elif isinstance(optim_wrapper, OptimWrapper):
        wrappers = [optim_wrapper]
    else:
        raise TypeError(f'unsupported optim wrapper {type(optim_wrapper)}')
    return [g for w in wrappers for g in w.optimizer.param_groups]


def groups_holding(groups: List[dict],
                   params: List[torch.nn.Parameter]) -> List[dict]:
    """The groups among ``groups`` that hold any of ``params``."""
    wanted = {id(p) for p in params}
    return [g for g in groups if any(id(p) in wanted for p in g['params'])]
