"""The BN-only retrain stage that ends Bi-Real Net's training."""
import hashlib

import torch
from mmengine import dist
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmpretrain.registry import HOOKS
from torch.nn.modules.batchnorm import _BatchNorm

from mmbireal.models import BinaryConv2d
from mmbireal.models.binarizers import sign_nonzero

from ..param_groups import move_to_own_group, optimizer_built, tagged_groups


@HOOKS.register_module()
class BNRetrainHook(Hook):
    """Constrain binary weights to exactly +-1 and train BatchNorm only.

    The last step of the paper's procedure: the per-channel scale ``alpha``
    is dropped, every binary conv weight becomes ``sign(w)`` (stored, so
    the checkpoint holds exactly -1/+1), and every parameter that is not a
    BatchNorm parameter gets ``lr=0`` and ``weight_decay=0``, so BatchNorm
    absorbs the scale. Parameters keep ``requires_grad`` (turning it off
    after DDP has wrapped the model would break gradient reduction); with
    lr 0 the optimizer leaves them bit-for-bit unchanged.

    Re-applied on every run, so a resumed run is in the same state: the
    groups are made before the optimizer state is loaded, the weights are
    re-signed after the checkpoint is loaded (a no-op on +-1 weights).

    Example:
        >>> custom_hooks = [dict(type='BNRetrainHook')]
    """

    priority = 'VERY_HIGH'
    TAG = 'bn_retrain_frozen'

    @staticmethod
    def _model(runner):
        model = runner.model
        return model.module if is_model_wrapper(model) else model

    def before_run(self, runner) -> None:
        if not optimizer_built(runner):  # test/val-only runs
            return
        model = self._model(runner)
        frozen = [
            p for m in model.modules() if not isinstance(m, _BatchNorm)
            for p in m.parameters(recurse=False)
        ]
        moved = move_to_own_group(
            runner, frozen, self.TAG, lr=0.0, weight_decay=0.0)
        runner.logger.info(f'BNRetrainHook: lr=0 on {moved} non-BatchNorm '
                           'parameters; BatchNorm trains')

    def before_train(self, runner) -> None:
        convs = [
            m for m in self._model(runner).modules()
            if isinstance(m, BinaryConv2d)
        ]
        with torch.no_grad():
            for conv in convs:
                conv.weight_binarizer = 'sign'
                conv.weight.copy_(sign_nonzero(conv.weight))
        runner.logger.info(f'BNRetrainHook: {len(convs)} binary convs now '
                           'use exactly +-1 weights (alpha dropped)')

    def after_train(self, runner) -> None:
        """Check the result: +-1 weights, the same on every rank."""
        weights = torch.cat([
            m.weight.detach().flatten().cpu()
            for m in self._model(runner).modules()
            if isinstance(m, BinaryConv2d)
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

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        # Schedulers may have moved these groups' lr; hold them at 0.
        for group in tagged_groups(runner.optim_wrapper, self.TAG):
            group['lr'] = 0.0
            group['weight_decay'] = 0.0
