# Step 1a of the paper: the real-valued network (same topology, real 3x3
# convs, ReLU where sign will sit) from scratch with ResNet's schedule
# (SGD lr 0.1 at batch 256, wd 1e-4, 100 epochs, x0.1 at 30/60/90) and
# the paper's augmentation (short side 256, random 224 crop, flip).
_base_ = [
    '../_base_/models/bireal34.py',
    '../_base_/datasets/imagenet_bs16_bireal.py',
    'mmpretrain::_base_/schedules/imagenet_bs256.py',
    '../_base_/default_runtime.py',
]
model = dict(backbone=dict(conv_cfg=None, act_cfg=dict(type='ReLU')))
train_dataloader = dict(batch_size=32)
# resumes mid-epoch from iteration checkpoints (mmbireal.engine.loops)
train_cfg = dict(
    _delete_=True,
    type='ResumableEpochBasedTrainLoop',
    max_epochs=100,
    val_interval=1)
