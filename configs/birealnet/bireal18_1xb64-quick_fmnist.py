# Quick start: Bi-Real-18 (binary, ApproxSign + magnitude-aware weights)
# trained from scratch on the first 12,000 Fashion-MNIST training images
# for 2 epochs with Adam, evaluated on the official 10,000-image test split.
# Its run time on 2 CPU cores: README.md, "Quick start".
_base_ = [
    '../_base_/models/bireal18_fmnist.py',
    '../_base_/datasets/fashion_mnist_bs64.py',
    '../_base_/default_runtime_fmnist.py',
]
train_dataloader = dict(dataset=dict(indices=12000))
optim_wrapper = dict(
    optimizer=dict(type='Adam', lr=2e-3, weight_decay=0),
    # binary latent weights in a group of their own with weight_decay 0,
    # whatever the decay above (checked and logged by WeightDecayZeroHook)
    constructor='BinaryOptimWrapperConstructor',
    paramwise_cfg=dict(binary_no_decay=True))
# cosine decay to 0 over the 2 epochs, updated every iteration
param_scheduler = dict(
    type='CosineAnnealingLR', by_epoch=True, T_max=2,
    convert_to_iter_based=True)
# resumes mid-epoch from iteration checkpoints (mmbireal.engine.loops)
train_cfg = dict(
    type='ResumableEpochBasedTrainLoop',
    max_epochs=2, val_interval=1)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=64)
custom_hooks = [dict(type='WeightDecayZeroHook')]
