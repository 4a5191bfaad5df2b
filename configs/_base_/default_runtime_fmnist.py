# The default runtime at Fashion-MNIST scale: an epoch of the 12,000-image
# configs is 188 iterations of about 1 s on 2 CPU cores, a validation 40.
_base_ = './default_runtime.py'
default_hooks = dict(
    # a progress line about every 20 s, also during validation and test
    logger=dict(interval=20),
    # an interrupted run loses at most 50 iterations, and the quick start's
    # 376 iterations get mid-epoch checkpoints
    iter_checkpoint=dict(interval=50))
