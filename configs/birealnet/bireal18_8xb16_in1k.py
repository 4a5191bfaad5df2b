# Step 2 of the paper: Bi-Real-18 binary training from the clip pre-trained
# network. SGD momentum 0.9, weight decay 0, batch 128, lr 0.01, 20 epochs,
# x0.1 at epochs 10 and 15.
_base_ = [
    '../_base_/models/bireal18.py',
    '../_base_/datasets/imagenet_bs16_bireal.py',
    '../_base_/default_runtime.py',
]
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=0),
    # binary latent weights in a group of their own with weight_decay 0,
    # whatever the decay above (checked and logged by WeightDecayZeroHook)
    constructor='BinaryOptimWrapperConstructor',
    paramwise_cfg=dict(binary_no_decay=True))
param_scheduler = dict(
    type='MultiStepLR', by_epoch=True, milestones=[10, 15], gamma=0.1)
# resumes mid-epoch from iteration checkpoints (mmbireal.engine.loops)
train_cfg = dict(
    type='ResumableEpochBasedTrainLoop',
    max_epochs=20, val_interval=1)
val_cfg = dict()
test_cfg = dict()
# lr 0.01 belongs to the paper's batch of 128 (8 GPUs x 16).
auto_scale_lr = dict(base_batch_size=128)
custom_hooks = [dict(type='WeightDecayZeroHook')]
load_from = 'work_dirs/bireal18_clip-pre_8xb32_in1k/epoch_20.pth'
