"""Iteration checkpoints beside the epoch checkpoints, each pruned apart."""
import re
from collections import deque
from typing import List, Optional

from mmengine.dist import is_main_process
from mmengine.hooks import CheckpointHook
from mmengine.runner import Runner
from mmpretrain.registry import HOOKS


@HOOKS.register_module()
class IterCheckpointHook(CheckpointHook):
    """A :class:`~mmengine.hooks.CheckpointHook` by iterations whose
    ``max_keep_ckpts`` counts its own checkpoints only.

    mmengine's checkpoint hooks record the checkpoints they keep under one
    message-hub key, ``keep_ckpt_ids``. With an epoch hook and an iteration
    hook in one run, a resumed run restores whichever list was saved last
    into both: the other hook then deletes files that do not exist and
    never its old ones, so checkpoints pile up on every resume (or, where
    the numbers overlap, the wrong ones go). This hook keeps its list under
    ``keep_iter_ckpt_ids``.

    Args:
        interval (int): Save every ``interval`` iterations.
        max_keep_ckpts (int): Iteration checkpoints to keep; -1 keeps all.
        **kwargs: Other arguments of ``CheckpointHook`` (``by_epoch`` is
            False).

    Example:
        >>> default_hooks = dict(iter_checkpoint=dict(
        ...     type='IterCheckpointHook', interval=500, max_keep_ckpts=2,
        ...     save_last=False))
    """

    KEY = 'keep_iter_ckpt_ids'

    def __init__(self, interval: int = -1, max_keep_ckpts: int = -1,
                 **kwargs) -> None:
        kwargs['by_epoch'] = False
        super().__init__(interval=interval, **kwargs)
        self.keep = max_keep_ckpts
        self.keep_ckpt_ids: deque = deque()

    def before_train(self, runner: Runner) -> None:
        super().before_train(runner)  # max_keep_ckpts stays -1 for it
        if self.keep > 0:
            info = runner.message_hub.runtime_info
            kept = info.get(self.KEY)
            if kept is None and runner.iter > 0:
                # resumed from a checkpoint that kept no list of its own
                # (mmengine's hook, or an older version of this one): take
                # the iteration checkpoints on disk up to the resumed one,
                # and give the epoch hooks theirs in place of the shared
                # list they restored
                kept = checkpoints_on_disk(self, runner.iter)
                self._repair_epoch_hooks(runner)
            kept = list(kept or [])
            while len(kept) > self.keep:  # a smaller limit than before
                remove_checkpoint(self, kept.pop(0))
            self.keep_ckpt_ids = deque(kept)

    @staticmethod
    def _repair_epoch_hooks(runner: Runner) -> None:
        """Each of mmengine's epoch checkpoint hooks keeps its own files on
        disk (those set up before this one: the configs list it first),
        and the ones beyond its limit that the stale list hid go."""
        for hook in runner.hooks:
            if (type(hook) is CheckpointHook and hook.by_epoch
                    and hook.max_keep_ckpts > 0
                    and getattr(hook, 'out_dir', None)):
                steps = checkpoints_on_disk(hook, runner.epoch)
                for step in steps[:-hook.max_keep_ckpts]:
                    remove_checkpoint(hook, step)
                # the next save prunes the oldest of these
                hook.keep_ckpt_ids = deque(steps[-hook.max_keep_ckpts:],
                                           hook.max_keep_ckpts)
                # what the next checkpoint saves, so that a resume from it
                # restores this list, not the stale one
                runner.message_hub.update_info('keep_ckpt_ids',
                                               list(hook.keep_ckpt_ids))

    def _save_checkpoint_with_step(self, runner: Runner, step: int,
                                   meta: Optional[dict]) -> None:
        if self.keep > 0 and (not self.keep_ckpt_ids
                              or self.keep_ckpt_ids[-1] != step):
            if len(self.keep_ckpt_ids) == self.keep:
                remove_checkpoint(self, self.keep_ckpt_ids.popleft())
            self.keep_ckpt_ids.append(step)
            # before the save, so that the checkpoint holds the list
            runner.message_hub.update_info(self.KEY, list(self.keep_ckpt_ids))
        super()._save_checkpoint_with_step(runner, step, meta)


def remove_checkpoint(hook: CheckpointHook, step: int) -> None:
    """Delete ``hook``'s checkpoint of ``step`` on the main process, as
    mmengine's hook prunes (a file, or a folder as DeepSpeed saves)."""
    if not is_main_process():
        return
    path = hook.file_backend.join_path(hook.out_dir,
                                       hook.filename_tmpl.format(step))
    if hook.file_backend.isfile(path):
        hook.file_backend.remove(path)
    elif hook.file_backend.isdir(path):
        hook.file_backend.rmtree(path)


def checkpoints_on_disk(hook: CheckpointHook, last_step: int) -> List[int]:
    """The steps of ``hook``'s checkpoint files in its folder, up to
    ``last_step``, oldest first."""
    parts = hook.filename_tmpl.split('{}')
    if len(parts) != 2 or not hook.file_backend.isdir(hook.out_dir):
        return []
    before, after = map(re.escape, parts)
    pattern = re.compile(rf'{before}(\d+){after}')
    found = (pattern.fullmatch(name) for name in
             hook.file_backend.list_dir_or_file(hook.out_dir))
    return sorted(step for step in (int(m[1]) for m in found if m)
                  if step <= last_step)
