"""IterCheckpointHook keeps its own checkpoints apart from the epoch hook's,
also across a resume."""
import os

import pytest
from tiny_runner import InterruptAtIter, Interrupted, make_runner


def hooks(iter_hook: str) -> dict:
    """The configs' pair: epoch checkpoints and iteration checkpoints."""
    return dict(default_hooks=dict(
        checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=1),
        iter_checkpoint=dict(type=iter_hook, by_epoch=False, interval=1,
                             max_keep_ckpts=2, save_last=False)))


@pytest.mark.parametrize('iter_hook', ['IterCheckpointHook',
                                       'CheckpointHook'])
def test_each_hook_prunes_its_own_checkpoints_after_a_resume(
        tmp_path, iter_hook):
    work = tmp_path / 'run'  # 3 epochs of 4 iterations
    runner = make_runner(work, [InterruptAtIter(6)], max_epochs=3,
                         **hooks(iter_hook))
    with pytest.raises(Interrupted):
        runner.train()
    assert {f for f in os.listdir(work) if f.endswith('.pth')} == {
        'epoch_1.pth', 'iter_5.pth', 'iter_6.pth'}
    make_runner(work, max_epochs=3, resume=True, **hooks(iter_hook)).train()
    kept = {f for f in os.listdir(work) if f.endswith('.pth')}
    if iter_hook == 'IterCheckpointHook':
        assert kept == {'epoch_3.pth', 'iter_11.pth', 'iter_12.pth'}
    else:  # mmengine's shared list: the epoch hook lost track of epoch 1
        assert 'epoch_1.pth' in kept


def test_a_resume_from_a_run_without_its_list_prunes_the_older_files(
        tmp_path):
    """A run checkpointed by mmengine's hook (our configs before
    IterCheckpointHook) kept no list of its own: the resumed run adopts
    the iteration files on disk instead of leaving them for good."""
    work = tmp_path / 'run'
    runner = make_runner(work, [InterruptAtIter(6)], max_epochs=3,
                         **hooks('CheckpointHook'))
    with pytest.raises(Interrupted):
        runner.train()
    (work / 'iter_60.pth').write_bytes(b'')  # past the resumed iteration
    make_runner(work, max_epochs=3, resume=True,
                **hooks('IterCheckpointHook')).train()
    kept = {f for f in os.listdir(work) if f.endswith('.pth')}
    # the epoch hook had restored the iteration hook's list: it gets its
    # own files back, so epoch_1.pth goes too
    assert kept == {'epoch_3.pth', 'iter_11.pth', 'iter_12.pth',
                    'iter_60.pth'}


def test_a_resume_after_several_old_resumes_prunes_every_stale_epoch_file(
        tmp_path):
    """mmengine's shared list lost an epoch file at each resume; the first
    resume with IterCheckpointHook removes all of them, not just the one
    the next save would prune."""
    work = tmp_path / 'run'  # 6 epochs of 4 iterations
    for stop, resume in ((6, False), (10, True), (14, True)):
        runner = make_runner(work, [InterruptAtIter(stop)], max_epochs=6,
                             resume=resume, **hooks('CheckpointHook'))
        with pytest.raises(Interrupted):
            runner.train()
    epochs = {f for f in os.listdir(work) if f.startswith('epoch_')}
    assert epochs == {'epoch_1.pth', 'epoch_2.pth', 'epoch_3.pth'}
    make_runner(work, max_epochs=6, resume=True,
                **hooks('IterCheckpointHook')).train()
    kept = {f for f in os.listdir(work) if f.endswith('.pth')}
    assert kept == {'epoch_6.pth', 'iter_23.pth', 'iter_24.pth'}


def test_a_lower_limit_on_resume_prunes_down_to_it(tmp_path):
    work = tmp_path / 'run'
    runner = make_runner(work, [InterruptAtIter(6)], max_epochs=3,
                         **hooks('IterCheckpointHook'))
    with pytest.raises(Interrupted):
        runner.train()
    lower = hooks('IterCheckpointHook')
    lower['default_hooks']['iter_checkpoint']['max_keep_ckpts'] = 1
    resumed = make_runner(work, max_epochs=3, resume=True, **lower)
    resumed.train()
    kept = {f for f in os.listdir(work) if f.startswith('iter_')}
    assert kept == {'iter_12.pth'}


@pytest.mark.parametrize('key', ['checkpoint', 'iter_checkpoint'])
def test_a_misspelt_checkpoint_hook_argument_stops_before_training(
        tmp_path, capsys, key):
    """mmengine's hook hands unknown keywords to save_checkpoint at the
    first save; the tools refuse them before the first iteration."""
    from mmbireal.utils.launch import check_checkpoint_hooks
    options = hooks('IterCheckpointHook')
    check_checkpoint_hooks(make_runner(tmp_path / 'ok', **options))
    options['default_hooks'][key]['intervl'] = 4
    with pytest.raises(SystemExit):
        check_checkpoint_hooks(make_runner(tmp_path / 'typo', **options))
    line = capsys.readouterr().err.strip()
    hook = 'IterCheckpointHook' if key == 'iter_checkpoint' else \
        'CheckpointHook'
    assert line.startswith(f"error: {hook} does not take the argument(s) "
                           "'intervl' given in the config; accepted: "
                           'interval, '), line
    assert ', max_keep_ckpts, ' in line and ', save_best, ' in line


def test_checkpoints_on_disk_counts_folders_as_deepspeed_saves(tmp_path):
    from mmengine.fileio import get_file_backend
    from mmengine.hooks import CheckpointHook

    from mmbireal.engine.hooks.iter_checkpoint_hook import (
        checkpoints_on_disk,
        remove_checkpoint,
    )
    hook = CheckpointHook(interval=1, by_epoch=True)
    hook.out_dir = str(tmp_path)  # as before_train sets them
    hook.file_backend = get_file_backend(str(tmp_path))
    (tmp_path / 'epoch_1.pth').mkdir()
    (tmp_path / 'epoch_2.pth').write_bytes(b'')
    assert checkpoints_on_disk(hook, 10) == [1, 2]
    remove_checkpoint(hook, 1)
    assert not (tmp_path / 'epoch_1.pth').exists()
