"""Zero weight decay on the latent weights of binary convolutions."""
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmpretrain.registry import HOOKS

from mmbireal.models import BinaryConv2d

from ..param_groups import move_to_own_group, optimizer_built, tagged_groups


def binary_latent_weights(model) -> list:
    """The real-valued weights that binary convs binarize."""
    if is_model_wrapper(model):
        model = model.module
    return [
        m.weight for m in model.modules()
        if isinstance(m, BinaryConv2d) and m.binarizes_weight
    ]


@HOOKS.register_module()
class WeightDecayZeroHook(Hook):
    """Guarantee ``weight_decay=0`` on binary latent weights.

    Bi-Real Net trains with no weight decay: decay pulls latent weights to
    0, where their sign flips at random. A config that inherits a schedule
    with decay keeps it for the real-valued layers; this hook moves the
    binary latent weights into optimizer groups of their own with decay 0
    (before a resumed optimizer state is loaded, so the layouts match) and
    holds it at 0 before every iteration.

    Example:
        >>> custom_hooks = [dict(type='WeightDecayZeroHook')]
    """

    priority = 'VERY_HIGH'
    TAG = 'binary_weights_no_decay'

    def before_run(self, runner) -> None:
        if not optimizer_built(runner):  # test/val-only runs
            return
        params = binary_latent_weights(runner.model)
        old = sorted({
            g.get('weight_decay', 0)
            for g in runner.optim_wrapper.param_groups
        })
        moved = move_to_own_group(runner, params, self.TAG, weight_decay=0.0)
        runner.logger.info(
            f'WeightDecayZeroHook: weight_decay set to 0 on {moved} binary '
            f'latent weights ({sum(p.numel() for p in params):,} values); '
            f'decay before: {old}; other parameters unchanged')

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        for group in tagged_groups(runner.optim_wrapper, self.TAG):
            group['weight_decay'] = 0.0
