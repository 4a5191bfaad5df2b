# ReActNet-style training of Bi-Real-18 (Liu et al., ECCV 2020; the authors'
# resnet/1_step1), step 1: binary activations through RSign (a learnable
# per-channel bias before each sign), RPReLU after each residual add, real
# 3x3 weights; trained from scratch on a frozen ImageNet ResNet-34's softmax
# (DistillImageClassifier, soft cross-entropy, no label loss). Adam lr 2.5e-3
# at batch 512, linear decay to 0 over 128 epochs; weight decay 1e-5 on what
# the authors decay (their 4-D parameters: conv weights and the learnable
# shifts), none on BN, PReLU slopes and the classifier. Augmentation of the
# authors' recipe (RandomResizedCrop, lighting 0.1, flip): the base config's.
_base_ = ['./bireal18_8xb64_adam-256e_in1k.py']
model = dict(
    type='DistillImageClassifier',
    backbone=dict(
        conv_cfg=dict(weight_binarizer=None),  # step 1: real weights
        sign_bias_cfg=dict(type='LearnableBias'),
        block_act_cfg=dict(type='RPReLU')),
    # the teacher: MMPretrain's ResNet-34 (73.62 top-1) and its weights,
    # downloaded beforehand (nothing is downloaded at run time):
    # https://download.openmmlab.com/mmclassification/v0/resnet/
    # resnet34_8xb32_in1k_20210831-f257d4e6.pth
    teacher_cfg='mmpretrain::resnet/resnet34_8xb32_in1k.py',
    teacher_ckpt='checkpoints/resnet34_8xb32_in1k_20210831-f257d4e6.pth',
    alpha=0.0)
optim_wrapper = dict(
    optimizer=dict(type='Adam', lr=2.5e-3, weight_decay=1e-5),
    paramwise_cfg=dict(
        norm_decay_mult=0.0,
        custom_keys={
            '.prelu.': dict(decay_mult=0.0),
            'head.': dict(decay_mult=0.0)
        }))
param_scheduler = dict(end=128)
train_cfg = dict(max_epochs=128)
# no binary weights in this step: nothing for WeightDecayZeroHook to check
custom_hooks = []
