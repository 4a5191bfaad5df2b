"""Log how many binary weights flip their sign, per epoch and per stage."""
from collections import OrderedDict
from typing import Dict, List, Optional, Tuple

import torch
from mmengine.hooks import Hook
from mmengine.runner import Runner
from mmpretrain.registry import HOOKS
from torch import nn

from mmbireal.models.binary_conv import binary_convs

from ..param_groups import unwrap

StageWeights = Dict[str, List[Tuple[str, nn.Parameter]]]


def binary_weights_by_stage(model: nn.Module) -> StageWeights:
    """``stage -> [(name, latent weight)]`` of the convs that binarize their
    weight; the stage is the first ``layer*`` part of the module name (the
    backbone's stages), else the first part."""
    stages: OrderedDict[str, list] = OrderedDict()
    for name, m in binary_convs(unwrap(model)):
        if not m.binarizes_weight:
            continue
        parts = name.split('.')
        stage = next((p for p in parts if p.startswith('layer')), parts[0])
        stages.setdefault(stage, []).append((f'{name}.weight', m.weight))
    return stages


@HOOKS.register_module()
class FlipRatioHook(Hook):
    """Log the fraction of binary weights whose sign changed in an epoch.

    Larq's flip-ratio metric, per epoch: at the end of every training epoch
    the sign of each binary latent weight (``sign(0) = +1``) is compared
    with its sign at the start of the epoch. The fractions, one per stage
    and ``all``, are logged as ``flip_ratio/<stage>`` through mmengine's
    visualizer (so they land in ``vis_data/scalars.json``, TensorBoard,
    ...) at step ``epoch``, as the validation metrics are, and in the text
    log. The signs at the start of the epoch are saved with the checkpoint,
    so a run resumed mid-epoch reports the same ratio as an uninterrupted
    one.

    Example:
        >>> custom_hooks = [dict(type='FlipRatioHook')]
    """

    priority = 'LOW'
    CKPT_KEY = 'flip_ratio_reference'

    def __init__(self) -> None:
        self._reference: Optional[Dict[str, torch.Tensor]] = None

    @staticmethod
    def _signs(runner) -> Dict[str, torch.Tensor]:
        return {
            name: (w.detach() >= 0).cpu()
            for params in binary_weights_by_stage(runner.model).values()
            for name, w in params
        }

    def before_train_epoch(self, runner: Runner) -> None:
        if self._reference is None:  # not restored from a checkpoint
            self._reference = self._signs(runner)

    def after_train_epoch(self, runner: Runner) -> None:
        if self._reference is None:
            return
        ratios = {}
        flipped_all = total_all = 0
        for stage, params in binary_weights_by_stage(runner.model).items():
            flipped = total = 0
            for name, w in params:
                ref = self._reference.get(name)
                if ref is None or ref.shape != w.shape:
                    continue
                flipped += int(((w.detach() >= 0).cpu() != ref).sum())
                total += w.numel()
            if total:
                ratios[f'flip_ratio/{stage}'] = flipped / total
            flipped_all += flipped
            total_all += total
        self._reference = None  # the next epoch starts from its own signs
        if not total_all:
            return
        ratios['flip_ratio/all'] = flipped_all / total_all
        runner.visualizer.add_scalars(ratios, step=runner.epoch + 1)
        runner.logger.info(
            f'FlipRatioHook: epoch {runner.epoch + 1}: ' + ', '.join(
                f'{k.split("/", 1)[1]} {v:.4%}' for k, v in ratios.items()))

    def before_save_checkpoint(self, runner: Runner, checkpoint: dict) -> None:
        if self._reference is not None:
            checkpoint[self.CKPT_KEY] = self._reference

    def after_load_checkpoint(self, runner: Runner, checkpoint: dict) -> None:
        # mmengine calls this for load_from too; only the run the
        # checkpoint belongs to continues its epoch, a new run starting
        # from its weights measures flips from them
        if getattr(runner, '_resume', False):
            reference = checkpoint.get(self.CKPT_KEY)
            # mmengine maps a resumed checkpoint to the run's device; the
            # signs are compared on the CPU
            self._reference = None if reference is None else {
                name: signs.cpu() for name, signs in reference.items()}
