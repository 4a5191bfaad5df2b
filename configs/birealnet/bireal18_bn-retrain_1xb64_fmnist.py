# Step 3: exactly +-1 weights, lr 0 everywhere but BatchNorm, one epoch.
_base_ = ['./bireal18_1xb64_fmnist.py']
# exactly +-1 weights, no alpha (BNRetrainHook checks it)
model = dict(backbone=dict(conv_cfg=dict(weight_binarizer='sign')))
# lr 0 and weight_decay 0 on every parameter outside BatchNorm (the
# constructor and its binary_no_decay come from the base config)
optim_wrapper = dict(
    optimizer=dict(lr=0.001), paramwise_cfg=dict(bn_only=True))
param_scheduler = dict(
    _delete_=True, type='ConstantLR', factor=1.0, by_epoch=True)
train_cfg = dict(max_epochs=1)
custom_hooks = [dict(type='BNRetrainHook')]
load_from = 'work_dirs/bireal18_1xb64_fmnist/epoch_4.pth'
