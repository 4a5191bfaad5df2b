# The authors' PyTorch recipe: from scratch, Adam lr 1e-3 at batch 512,
# linear decay to 0 over 256 epochs, weight decay 0, label smoothing 0.1,
# RandomResizedCrop + PCA lighting (0.1) + flip, no BN retrain.
_base_ = [
    '../_base_/models/bireal18.py',
    '../_base_/datasets/imagenet_bs16_bireal.py',
    '../_base_/default_runtime.py',
]
model = dict(
    backbone=dict(conv_cfg=dict(weight_binarizer='scaled_sign')),
    head=dict(
        loss=dict(
            type='LabelSmoothLoss', label_smooth_val=0.1, mode='original')))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=224),
    # AlexNet's ImageNet PCA on 0-255 pixel values, as MMPretrain uses it:
    # on the BGR image (rows of eigvec in B, G, R order), which the data
    # preprocessor turns into RGB as it does at test time (to_rgb=True
    # here would return an RGB image for it to swap back)
    dict(
        type='Lighting',
        eigval=[55.4625, 4.7940, 1.1475],
        eigvec=[[-0.5836, -0.6948, 0.4203], [-0.5808, -0.0045, -0.8140],
                [-0.5675, 0.7192, 0.4009]],
        alphastd=0.1,
        to_rgb=False),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
train_dataloader = dict(batch_size=64, dataset=dict(pipeline=train_pipeline))
optim_wrapper = dict(
    optimizer=dict(type='Adam', lr=1e-3, weight_decay=0),
    # binary latent weights in a group of their own with weight_decay 0,
    # whatever the decay above (checked and logged by WeightDecayZeroHook)
    constructor='BinaryOptimWrapperConstructor',
    paramwise_cfg=dict(binary_no_decay=True))
param_scheduler = dict(
    type='LinearLR',
    start_factor=1.0,
    end_factor=0.0,
    by_epoch=True,
    begin=0,
    end=256)
# resumes mid-epoch from iteration checkpoints (mmbireal.engine.loops)
train_cfg = dict(
    type='ResumableEpochBasedTrainLoop',
    max_epochs=256, val_interval=1)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=512)
custom_hooks = [dict(type='WeightDecayZeroHook')]
