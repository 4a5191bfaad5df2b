# Step 3: exactly +-1 weights, lr 0 everywhere but BatchNorm, one epoch.
_base_ = ['./bireal18_1xb64_fmnist.py']
model = dict(backbone=dict(conv_cfg=dict(weight_binarizer='sign')))
optim_wrapper = dict(optimizer=dict(lr=0.001))
param_scheduler = dict(
    _delete_=True, type='ConstantLR', factor=1.0, by_epoch=True)
train_cfg = dict(max_epochs=1)
custom_hooks = [dict(type='BNRetrainHook')]
load_from = 'work_dirs/bireal18_1xb64_fmnist/epoch_4.pth'
