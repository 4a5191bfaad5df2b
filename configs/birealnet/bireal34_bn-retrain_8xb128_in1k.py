# Step 3 for Bi-Real-34 (see bireal18_bn-retrain_8xb16_in1k.py).
_base_ = ['./bireal34_8xb128_in1k.py']
model = dict(backbone=dict(conv_cfg=dict(weight_binarizer='sign')))
optim_wrapper = dict(optimizer=dict(lr=0.001))
param_scheduler = dict(
    _delete_=True, type='ConstantLR', factor=1.0, by_epoch=True)
train_cfg = dict(max_epochs=1)
custom_hooks = [dict(type='BNRetrainHook')]
load_from = 'work_dirs/bireal34_8xb128_in1k/epoch_40.pth'
