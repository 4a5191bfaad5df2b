"""Move chosen parameters into optimizer groups of their own.

Hooks run after the runner has built the optimizer and the parameter
schedulers, and before it loads a checkpoint to resume. Moving parameters
into a new group at that point keeps the group layout identical between
the run that saved a checkpoint and the run that resumes from it; the
schedulers are told about the new groups so they scale them too.
"""
from typing import Dict, Iterable, List

import torch
from mmengine.optim import OptimWrapper, OptimWrapperDict

GROUP_TAG = 'mmbireal_group'


def _optimizers(optim_wrapper) -> List[torch.optim.Optimizer]:
    if isinstance(optim_wrapper, OptimWrapperDict):
        return [w.optimizer for w in optim_wrapper.values()]
    if isinstance(optim_wrapper, OptimWrapper):
        return [optim_wrapper.optimizer]
    raise TypeError(f'unsupported optim wrapper {type(optim_wrapper)}')


def optimizer_built(runner) -> bool:
    """False when the runner only tests (its optimizer is still a config)."""
    return isinstance(runner.optim_wrapper, (OptimWrapper, OptimWrapperDict))


def _schedulers(param_schedulers) -> list:
    if param_schedulers is None:
        return []
    if isinstance(param_schedulers, dict):
        return [s for group in param_schedulers.values() for s in group]
    return list(param_schedulers)


def tagged_groups(optim_wrapper, tag: str) -> List[dict]:
    """The param groups created by :func:`move_to_own_group` for ``tag``."""
    return [
        group for opt in _optimizers(optim_wrapper)
        for group in opt.param_groups if group.get(GROUP_TAG) == tag
    ]


def _sync_schedulers(runner, optimizer, index: int, group: dict,
                     settings: dict) -> None:
    """Keep each scheduler's per-group lists in step with ``group``."""
    for scheduler in _schedulers(runner.param_schedulers):
        name = scheduler.param_name
        if scheduler.optimizer is not optimizer:
            continue
        base = group.get(f'initial_{name}', group[name])
        if index < 0:
            scheduler.base_values.append(base)
            if hasattr(scheduler, '_last_value'):
                scheduler._last_value.append(group[name])
        elif name in settings:
            scheduler.base_values[index] = base
            if hasattr(scheduler, '_last_value'):
                scheduler._last_value[index] = group[name]


def move_to_own_group(runner, params: Iterable[torch.nn.Parameter],
                      tag: str, **settings) -> int:
    """Give ``params`` optimizer groups with ``settings`` overridden.

    A group holding only such parameters is changed in place; from a mixed
    group they are split off into a copy of it. Groups already tagged
    ``tag`` are left alone, so calling this twice changes nothing.

    Args:
        runner: The mmengine runner (its optimizer is built).
        params: Parameters to move.
        tag (str): Marks the groups so hooks can find them again; it is
            saved with the optimizer state.
        **settings: Group settings to set, e.g. ``lr=0`` or
            ``weight_decay=0``. ``initial_<name>`` is set too where a
            scheduler keeps one.

    Returns:
        int: Number of parameters moved.
    """
    wanted = {id(p) for p in params}
    moved = 0
    for optimizer in _optimizers(runner.optim_wrapper):
        # param_groups index -> group; -1, -2... for groups to append
        changed: Dict[int, dict] = {}
        for index, group in enumerate(optimizer.param_groups):
            if group.get(GROUP_TAG) == tag:
                continue
            mine = [p for p in group['params'] if id(p) in wanted]
            if not mine:
                continue
            moved += len(mine)
            if len(mine) == len(group['params']):
                target = changed[index] = group
            else:
                group['params'] = [
                    p for p in group['params'] if id(p) not in wanted
                ]
                target = {k: v for k, v in group.items() if k != 'params'}
                target['params'] = mine
                changed[-1 - len(changed)] = target
            target[GROUP_TAG] = tag
            for key, value in settings.items():
                target[key] = value
                if f'initial_{key}' in target:
                    target[f'initial_{key}'] = value
        for index, group in changed.items():
            if index < 0:  # a new group
                optimizer.add_param_group(group)
            _sync_schedulers(runner, optimizer, index, group, settings)
    return moved
