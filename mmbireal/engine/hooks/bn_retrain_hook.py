"""The BN-only retrain stage that ends Bi-Real Net's training."""
import hashlib
from typing import List

import torch
from mmengine import dist
from mmengine.hooks import EMAHook
from mmengine.runner import Runner
from mmpretrain.registry import HOOKS

from mmbireal.models.binarizers import sign_nonzero
from mmbireal.utils import InputError

from ..param_groups import (
    GROUP_SETTINGS,
    binary_weight_convs,
    non_bn_parameters,
    optimizer_built,
)
from .param_group_check import ParamGroupCheckHook


@HOOKS.register_module()
class BNRetrainHook(ParamGroupCheckHook):
    """Constrain binary weights to exactly +-1 and train BatchNorm only.

    The last step of the paper's procedure: the per-channel scale ``alpha``
    is dropped, every binary conv weight becomes ``sign(w)`` (stored, so
    the checkpoint holds exactly -1/+1), and every parameter that is not a
    BatchNorm parameter has ``lr=0`` and ``weight_decay=0``, so BatchNorm
    absorbs the scale. Parameters keep ``requires_grad`` (turning it off
    after DDP has wrapped the model would break gradient reduction); with
    lr 0 the optimizer leaves them bit-for-bit unchanged.

    The config says how: the model's binary convs use
    ``weight_binarizer='sign'`` (so tests and exports of the checkpoint see
    the same model), and
    :class:`~mmbireal.engine.optimizers.BinaryOptimWrapperConstructor`
    with ``paramwise_cfg=dict(bn_only=True)`` builds the lr-0 group before
    the schedulers and a resumed optimizer state see it. This hook checks
    both before the run (stopping with the config line to add), re-signs
    the weights after the checkpoint is loaded (a no-op on +-1 weights, so a
    resumed run is in the same state), stops the run if a scheduler moves
    the frozen lr away from 0, and at the end checks that the weights are
    +-1 and the same on every rank.

    Example:
        >>> model = dict(backbone=dict(conv_cfg=dict(weight_binarizer='sign')))
        >>> optim_wrapper = dict(
        ...     constructor='BinaryOptimWrapperConstructor',
        ...     paramwise_cfg=dict(bn_only=True))
        >>> custom_hooks = [dict(type='BNRetrainHook')]
    """

    WHAT = 'non-BatchNorm parameters'
    SWITCH = 'bn_only'
    SETTINGS = GROUP_SETTINGS[SWITCH]
    BINARIZER = 'sign'

    def watched(self, model: torch.nn.Module) -> List[torch.nn.Parameter]:
        return non_bn_parameters(model)

    def before_run(self, runner: Runner) -> None:
        if not optimizer_built(runner):  # test/val-only runs
            return
        convs = binary_weight_convs(runner.model)
        if not convs:
            raise InputError(
                'BNRetrainHook: the model has no convs with binarized '
                'weights; BN retrain is the last step of a binary network: '
                "use a binary config (conv_cfg=dict(type='BinaryConv2d'))")
        others = sorted({
            repr(conv.weight_binarizer)
            for conv in convs if conv.weight_binarizer != self.BINARIZER
        })
        if others:
            raise InputError(
                f'BNRetrainHook: binary convs use weight_binarizer '
                f'{", ".join(others)}; BN retrain needs exactly +-1 weights: '
                "set model.backbone.conv_cfg.weight_binarizer='sign' in the "
                'config')
        # EMAHook's averaged copy was taken before the re-signing and is
        # what it saves: the checkpoint would not hold +-1 weights
        if any(isinstance(hook, EMAHook) for hook in runner.hooks):
            raise InputError(
                'BNRetrainHook: EMAHook is set; its averaged weights, which '
                'it saves, are not the +-1 weights BN retrain trains: remove '
                'EMAHook from custom_hooks for this step')
        frozen = self.check_groups(runner)
        runner.logger.info(f'BNRetrainHook: lr=0 on {len(frozen)} '
                           'non-BatchNorm parameters; BatchNorm trains')

    def before_train(self, runner: Runner) -> None:
        super().before_train(runner)
        convs = binary_weight_convs(runner.model)
        with torch.no_grad():
            for conv in convs:
                conv.weight.copy_(sign_nonzero(conv.weight))
        runner.logger.info(f'BNRetrainHook: {len(convs)} binary convs now '
                           'use exactly +-1 weights (alpha dropped)')

    def after_train(self, runner: Runner) -> None:
        """Check the result: +-1 weights, the same on every rank."""
        weights = torch.cat([
            conv.weight.detach().flatten().cpu()
            for conv in binary_weight_convs(runner.model)
        ])
        if not bool(((weights == 1) | (weights == -1)).all()):
            raise RuntimeError('BNRetrainHook: binary weights moved away '
                               'from +-1 during the BN retrain')
        digest = hashlib.sha256(weights.numpy().tobytes()).hexdigest()[:16]
        digests = dist.all_gather_object(digest)
        if len(set(digests)) != 1:
            raise RuntimeError('BNRetrainHook: ranks ended with different '
                               f'binary weights (sha256 {digests})')
        runner.logger.info(
            f'BNRetrainHook: all {weights.numel():,} binary weights are -1 '
            f'or +1 and identical on all {len(digests)} rank(s) '
            f'(sha256 {digest})')
