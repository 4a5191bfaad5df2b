# MMPretrain's runtime (hooks, logging, visualizer, env), plus the plugin.
_base_ = 'mmpretrain::_base_/default_runtime.py'

# Registers BiRealNet, BinaryConv2d, LeakyClip, the hooks and datasets, and
# the weights-only checkpoint loader.
custom_imports = dict(imports=['mmbireal'], allow_failed_imports=False)

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=3),
    # an iteration checkpoint too, so an interrupted epoch loses at most
    # `interval` iterations; two are kept because mmengine deletes the
    # oldest before writing the next, and an interruption while writing
    # would otherwise leave none (IterCheckpointHook: it counts its own
    # checkpoints apart from the epoch hook's, also after a resume)
    iter_checkpoint=dict(
        type='IterCheckpointHook',
        by_epoch=False,
        interval=500,
        max_keep_ckpts=2,
        save_last=False),
    # stop at the first NaN/inf loss, before a broken checkpoint is written
    invalid_loss=dict(type='StopOnInvalidLossHook'),
    # under DDP, log the losses of the whole batch, not rank 0's share
    mean_loss=dict(type='MeanLossOverRanksHook'))

# a fixed seed, so a run can be repeated and resumed exactly (the
# reproduction scripts pass randomness.seed=N for each seed)
randomness = dict(seed=0)
