"""Hooks tools/train.py adds to every run: the final validation's metrics,
a warning when binary latent weights get weight decay, and Ctrl-C that
stops between iterations."""
import contextlib
import signal
from typing import Dict, Iterator, Optional

from mmengine.hooks import Hook
from mmengine.runner import Runner

from ..param_groups import all_param_groups, binary_latent_weights


class FinalValidationHook(Hook):
    """Keeps the metrics of the validation of the final weights.

    mmengine's message hub still holds the scores of an earlier epoch when
    a run resumes after its last epoch (a finished run, or one interrupted
    during its final validation): the checkpoint is written before that
    validation. This hook records what each validation of this run
    returns, and validates once more at the end of training if the final
    weights were not validated in this run.

    Attributes:
        metrics (dict, optional): The evaluator's metrics of the final
            weights, e.g. ``{'accuracy/top1': 79.18}``; None without a
            validation loop.
    """

    priority = 'LOWEST'

    def __init__(self) -> None:
        self.metrics: Optional[Dict[str, float]] = None
        self._validated_iter: Optional[int] = None

    def after_val_epoch(self, runner: Runner, metrics=None) -> None:
        self.metrics = dict(metrics or {})
        self._validated_iter = runner.iter

    def after_train(self, runner: Runner) -> None:
        if runner.val_loop is not None and \
                self._validated_iter != runner.iter:
            runner.val_loop.run()  # calls after_val_epoch


class BinaryWeightDecayCheckHook(Hook):
    """Warns (one line) when the optimizer decays binary latent weights.

    Decay pulls latent weights towards 0, where their signs flip at random;
    Bi-Real Net trains them without it. MMPretrain's schedules set
    ``weight_decay=1e-4``, so a config built on one needs
    ``WeightDecayZeroHook``. Checked before the first iteration, after the
    other hooks have set up the optimizer.
    """

    priority = 'LOWEST'

    def before_train(self, runner: Runner) -> None:
        binary = {id(p) for p in binary_latent_weights(runner.model)}
        decayed, rates = 0, set()
        for group in all_param_groups(runner.optim_wrapper):
            if group.get('weight_decay', 0) > 0:
                hit = sum(id(p) in binary for p in group['params'])
                if hit:
                    decayed += hit
                    rates.add(group['weight_decay'])
        if decayed:
            runner.logger.warning(
                f'weight decay ({", ".join(map(str, sorted(rates)))}) acts '
                f'on {decayed} of {len(binary)} binary latent weights and '
                'pulls them to 0, where their signs flip at random: set '
                "optim_wrapper.constructor='BinaryOptimWrapperConstructor' "
                'with paramwise_cfg=dict(binary_no_decay=True) and add '
                "dict(type='WeightDecayZeroHook') to custom_hooks (or set "
                'the optimizer\'s weight_decay=0)')


class StopOnInterruptHook(Hook):
    """Turns Ctrl-C into a stop at the end of the running iteration.

    Python raises ``KeyboardInterrupt`` wherever the main thread happens to
    be: in the middle of writing a checkpoint, or inside mmengine's config
    formatting, which turns it into a ``SyntaxError`` that prints the whole
    config. Within :meth:`deferring`, the first Ctrl-C only sets
    :attr:`requested`; the hook raises ``KeyboardInterrupt`` after the
    iteration (and the checkpoint the other hooks save after it) is done.
    A second Ctrl-C stops at once.
    """

    priority = 'LOWEST'  # after CheckpointHook

    def __init__(self) -> None:
        self.requested = False

    def _on_sigint(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def _stop_if_requested(self, *args, **kwargs) -> None:
        if self.requested:
            raise KeyboardInterrupt

    after_train_iter = after_val_iter = after_test_iter = _stop_if_requested

    @contextlib.contextmanager
    def deferring(self) -> Iterator[None]:
        """Catch SIGINT within the block; an error after a Ctrl-C (e.g. a
        data-loader worker that the signal stopped) is re-raised as the
        ``KeyboardInterrupt`` it follows from. An ignored SIGINT stays
        ignored, as Python leaves it: a shell script's background job gets
        it so, that a Ctrl-C meant for the script does not stop the job."""
        if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
            yield
            return
        previous = signal.signal(signal.SIGINT, self._on_sigint)
        try:
            yield
        except Exception as e:
            if self.requested:
                raise KeyboardInterrupt from e
            raise
        finally:
            signal.signal(signal.SIGINT, previous)
