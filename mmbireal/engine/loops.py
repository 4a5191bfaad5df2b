"""An epoch-based training loop that resumes mid-epoch exactly."""
import functools
import random
from typing import Optional, Union

import numpy as np
import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.runner import EpochBasedTrainLoop, Runner
from mmengine.runner.utils import set_random_seed
from mmpretrain.registry import LOOPS

from mmbireal.utils.errors import InputError

# message-hub keys (saved in every checkpoint): the last epoch whose
# validation started; the random state after the last iteration
VALIDATED_EPOCH = 'mmbireal_validated_epoch'
RANDOM_STATE = 'mmbireal_random_state'

# what a seed is mixed for (independent_seeds): one stream each
SAMPLER, MAIN_PROCESS, WORKERS = range(3)


def mixed_seed(*words: int) -> int:
    """A 31-bit seed that numpy's ``SeedSequence`` derives from ``words``:
    nearby inputs give unrelated seeds."""
    return int(np.random.SeedSequence(list(words)).generate_state(1)[0] >> 1)


def random_state() -> dict:
    """Python's, numpy's and torch's (CPU and this process's CUDA device)
    generator states, as plain types and tensors (a weights-only load reads
    them)."""
    kind, key, pos, has_gauss, gauss = np.random.get_state()
    return dict(
        python=random.getstate(),
        numpy=(kind, torch.from_numpy(key.astype(np.int64)), int(pos),
               int(has_gauss), float(gauss)),
        torch=torch.get_rng_state(),
        cuda=torch.cuda.get_rng_state()
        if torch.cuda.is_available() else [])


def set_random_state(state: dict) -> None:
    """Restore what :func:`random_state` returned.

    mmengine resumes with ``map_location`` set to the run's device, so the
    saved tensors may arrive on a GPU; the generators take CPU tensors.
    """
    random.setstate(state['python'])
    kind, key, pos, has_gauss, gauss = state['numpy']
    np.random.set_state((kind, key.cpu().numpy().astype(np.uint32), pos,
                         has_gauss, gauss))
    torch.set_rng_state(state['torch'].cpu())
    cuda = state['cuda']
    if isinstance(cuda, torch.Tensor) and torch.cuda.is_available():
        torch.cuda.set_rng_state(cuda.cpu())
    elif len(cuda) and torch.cuda.is_available():  # all devices: older saves
        torch.cuda.set_rng_state_all([s.cpu() for s in cuda])


class RecordRandomState(Hook):
    """Record the random state after each iteration in the message hub,
    before the checkpoint hook saves it (highest priority)."""

    priority = 'HIGHEST'

    def after_train_iter(self,
                         runner: Runner,
                         batch_idx: int,
                         data_batch: Optional[Union[dict, tuple,
                                                    list]] = None,
                         outputs: Optional[dict] = None) -> None:
        # only rank 0's message hub is saved: the rank says whose it is
        runner.message_hub.update_info(
            RANDOM_STATE, dict(iter=runner.iter + 1, rank=get_rank(),
                               state=random_state()))


@LOOPS.register_module()
class ResumableEpochBasedTrainLoop(EpochBasedTrainLoop):
    """:class:`EpochBasedTrainLoop` that loses nothing on an interruption.

    mmengine's loop restarts a resumed epoch from its first batch. This one,
    resumed from an iteration checkpoint (a ``CheckpointHook`` with
    ``by_epoch=False``, see ``configs/_base_/default_runtime.py``), draws
    the epoch's batches in the same order and skips those already trained
    on, so the run continues where it stopped. Three things make the
    continuation identical to an uninterrupted run:

    * every epoch starts from random state derived from ``(seed, epoch)``
      (Python, numpy and torch generators), so data augmentation in the
      main process does not depend on how many epochs ran in this process;
    * the sampler is re-seeded with the resumed run's seed (it was built
      before the checkpoint was loaded), the same on every process even
      with ``randomness.diff_rank_seed``, so the processes still split one
      order between them;
    * the random state after every iteration is saved with the checkpoint
      (:class:`RecordRandomState`, which the loop registers) and restored
      after the skipped batches are drawn, so random numbers the training
      step itself draws (dropout, Mixup/CutMix) continue as they were. A
      checkpoint saved without it (before this) resumes with the state of
      the replayed data loading instead. Under DDP mmengine saves rank 0's
      checkpoint only: with one seed for all ranks that state is every
      rank's; with ``diff_rank_seed`` the other ranks resume with the
      replay's state (their numbers stay their own, but are not those of
      an uninterrupted run).

    Resumed from the checkpoint of an epoch's end, it first runs that
    epoch's validation, which the checkpoint (saved before it) cannot have
    seen; a checkpoint rewritten after the validation (``save_best``)
    records it in the message hub and is not validated twice.

    Skipped batches are still loaded, so augmentation draws stay aligned.
    Workers seed themselves once per epoch, unless ``persistent_workers``
    keeps them (and their random state) across epochs: for exact resumption
    use ``num_workers=0`` or ``persistent_workers=False``.

    By default seeds are used as in mmengine: the sampler shuffles epoch e
    of seed s with ``s + e``, the main process starts epoch e from
    ``s + e`` and workers from ``s + worker index`` in every epoch. Runs
    with seeds s and s + 1 therefore share streams, shifted by one epoch or
    one worker. ``independent_seeds=True`` derives each of these from
    ``(s, purpose, epoch)`` with numpy's ``SeedSequence`` instead, so runs
    with different seeds share none, and workers draw new augmentation
    every epoch.

    Args:
        independent_seeds (bool): Derive the sampler's, the main process's
            and the workers' seeds from the run's seed so that no two seeds
            share a stream (see above). Defaults to False (mmengine's use).

    The other arguments are those of
    :class:`mmengine.runner.EpochBasedTrainLoop` (mmengine accepts ``type``
    or ``by_epoch`` in ``train_cfg``, not both).

    Example:
        >>> train_cfg = dict(type='ResumableEpochBasedTrainLoop',
        ...                  max_epochs=4, val_interval=1)
    """

    def __init__(self, runner: Runner, *args,
                 independent_seeds: bool = False, **kwargs) -> None:
        if not isinstance(independent_seeds, bool):  # 'false' is truthy
            raise InputError('train_cfg.independent_seeds must be True or '
                             f'False, got {independent_seeds!r}')
        super().__init__(runner, *args, **kwargs)
        self.independent_seeds = independent_seeds
        runner.register_hook(RecordRandomState())

    def run(self) -> torch.nn.Module:
        sampler = getattr(self.dataloader, 'sampler', None)
        if hasattr(sampler, 'seed'):
            sampler.seed = self.shared_seed()
            if self.independent_seeds:
                sampler.seed = mixed_seed(sampler.seed, SAMPLER)
        self.runner.call_hook('before_train')
        if self._epoch > 0 and self._iter == self._epoch * len(
                self.dataloader) and self.runner.message_hub.get_info(
                    VALIDATED_EPOCH) != self._epoch:
            # resumed from an epoch's checkpoint saved before the epoch's
            # validation: a run stopped during it (or before the next
            # iteration checkpoint) would never have that score. One saved
            # after it (CheckpointHook's save_best rewrites it then) says
            # so in the message hub, and is not validated twice.
            self.validate_if_due()
        while self._epoch < self._max_epochs and not self.stop_training:
            self.run_epoch()
            self.validate_if_due()
        self.runner.call_hook('after_train')
        return self.runner.model

    def validate_if_due(self) -> None:
        """Validate when the epoch just ended is a validation epoch, as
        mmengine's loop decides it."""
        self._decide_current_val_interval()
        if (self.runner.val_loop is not None
                and self._epoch >= self.val_begin
                and (self._epoch % self.val_interval == 0
                     or self._epoch == self._max_epochs)):
            # checkpoints from here on, to the next epoch's end, hold it
            self.runner.message_hub.update_info(VALIDATED_EPOCH, self._epoch)
            self.runner.val_loop.run()

    def _saved_random_state(self) -> Optional[dict]:
        """The random state this process had after the resumed checkpoint's
        last iteration, None if the checkpoint has none. Checkpoints hold
        rank 0's only: that is every rank's when all share one seed; with
        ``diff_rank_seed`` the other ranks keep the replay's state, which
        differs from rank to rank as before the interruption."""
        saved = self.runner.message_hub.get_info(RANDOM_STATE)
        if not (isinstance(saved, dict) and saved.get('iter') == self._iter):
            return None
        randomness = getattr(self.runner, '_randomness_cfg', None) or {}
        if saved.get('rank', 0) != get_rank() and randomness.get(
                'diff_rank_seed', False):
            return None
        return saved['state']

    def shared_seed(self) -> int:
        """The run's seed as every process has it: ``diff_rank_seed`` adds
        the rank to ``runner.seed``, which would give each process its own
        order, so some samples would be drawn twice and others never."""
        # the arguments of Runner.set_randomness, also after a resume
        randomness = getattr(self.runner, '_randomness_cfg', None) or {}
        if randomness.get('diff_rank_seed', False):
            return self.runner.seed - get_rank()
        return self.runner.seed

    def run_epoch(self) -> None:
        self.runner.call_hook('before_train_epoch')
        self.runner.model.train()
        if self.independent_seeds:
            set_random_seed(
                mixed_seed(self.runner.seed, MAIN_PROCESS, self._epoch))
            self._seed_workers(
                mixed_seed(self.shared_seed(), WORKERS, self._epoch))
        else:
            set_random_seed(self.runner.seed + self._epoch)
        done = self._iter - self._epoch * len(self.dataloader)
        saved = self._saved_random_state() if done else None
        for idx, data_batch in enumerate(self.dataloader):
            if idx < done:  # trained on before the interruption
                if idx == done - 1 and saved is not None:
                    set_random_state(saved)  # as the next batch was drawn
                continue
            self.run_iter(idx, data_batch)
        self.runner.call_hook('after_train_epoch')
        self._epoch += 1

    def _seed_workers(self, seed: int) -> None:
        """Give the workers this epoch starts ``seed`` (mmengine's
        ``worker_init_fn`` adds the rank and worker index to it)."""
        init = getattr(self.dataloader, 'worker_init_fn', None)
        if isinstance(init, functools.partial) and 'seed' in init.keywords:
            self.dataloader.worker_init_fn = functools.partial(
                init.func, *init.args, **{**init.keywords, 'seed': seed})
