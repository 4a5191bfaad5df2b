# Step 2: binary training from the clip pre-trained network, the paper's
# optimiser (SGD momentum 0.9, weight decay 0, lr 0.01 per 128 images)
# with its two x0.1 steps at half and three quarters of the run; 4 epochs
# on the first 12,000 training images like every step of the reproduction.
_base_ = [
    '../_base_/models/bireal18_fmnist.py',
    '../_base_/datasets/fashion_mnist_bs64.py',
    '../_base_/default_runtime_fmnist.py',
]
train_dataloader = dict(dataset=dict(indices=12000))
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.005, momentum=0.9, weight_decay=0),
    # binary latent weights in a group of their own with weight_decay 0,
    # whatever the decay above (checked and logged by WeightDecayZeroHook)
    constructor='BinaryOptimWrapperConstructor',
    paramwise_cfg=dict(binary_no_decay=True))
param_scheduler = dict(
    type='MultiStepLR', by_epoch=True, milestones=[2, 3], gamma=0.1)
# resumes mid-epoch from iteration checkpoints (mmbireal.engine.loops)
train_cfg = dict(
    type='ResumableEpochBasedTrainLoop',
    max_epochs=4, val_interval=1)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=64)
# FlipRatioHook logs the share of binary weights that change sign per epoch
custom_hooks = [dict(type='WeightDecayZeroHook'), dict(type='FlipRatioHook')]
load_from = 'work_dirs/bireal18_clip-pre_1xb64_fmnist/epoch_4.pth'
