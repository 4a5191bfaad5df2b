# ReActNet's two steps at Fashion-MNIST scale (the reproduction's budget:
# 4 epochs a step on the first 12,000 training images), without
# distillation: the ablation with RSign and RPReLU only.
# Step 1: binary activations (RSign), real 3x3 weights, RPReLU after each
# residual add, from scratch. Adam at the authors' 2.5e-3 per 512 images
# (3.125e-4 at batch 64), linear decay to 0; weight decay 1e-5 on the conv
# weights and the learnable shifts, none on BN, PReLU slopes and the head.
_base_ = ['./bireal18_1xb64_fmnist.py']
model = dict(
    backbone=dict(
        conv_cfg=dict(weight_binarizer=None),  # step 1: real weights
        sign_bias_cfg=dict(type='LearnableBias'),
        block_act_cfg=dict(type='RPReLU')))
optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='Adam', lr=3.125e-4,
                   weight_decay=1e-5),
    paramwise_cfg=dict(
        norm_decay_mult=0.0,
        custom_keys={
            '.prelu.': dict(decay_mult=0.0),
            'head.': dict(decay_mult=0.0)
        }))
param_scheduler = dict(
    _delete_=True,
    type='LinearLR',
    start_factor=1.0,
    end_factor=0.0,
    by_epoch=True,
    begin=0,
    end=4)
# no binary weights in this step: nothing for the weight hooks to watch
custom_hooks = []
load_from = None
