# The paper's procedure at Fashion-MNIST scale (tools/reproduce/
# run_study.sh): every step trains 4 epochs on the first 12,000 training
# images and is evaluated on the official 10,000 test images.
# Step 1a: the real-valued network (real 3x3 convs, ReLU where sign will sit)
# from scratch with ResNet-style SGD (lr 0.1 per 256 images, wd 1e-4),
# cosine decay.
_base_ = [
    '../_base_/models/bireal18_fmnist.py',
    '../_base_/datasets/fashion_mnist_bs64.py',
    '../_base_/default_runtime_fmnist.py',
]
model = dict(backbone=dict(conv_cfg=None, act_cfg=dict(type='ReLU')))
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.025, momentum=0.9, weight_decay=1e-4))
train_dataloader = dict(dataset=dict(indices=12000))
param_scheduler = dict(type='CosineAnnealingLR', by_epoch=True, T_max=4)
# resumes mid-epoch from iteration checkpoints (mmbireal.engine.loops)
train_cfg = dict(
    type='ResumableEpochBasedTrainLoop',
    max_epochs=4, val_interval=1)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=64)
