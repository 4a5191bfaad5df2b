# Step 3: weights constrained to exactly -1/+1 (alpha dropped), lr 0 on every
# conv (and the fc), BatchNorm retrained for one epoch to absorb the scale.
# The paper gives no lr for this step; 1e-3 is ours.
_base_ = ['./bireal18_8xb16_in1k.py']
model = dict(backbone=dict(conv_cfg=dict(weight_binarizer='sign')))
optim_wrapper = dict(optimizer=dict(lr=0.001))
param_scheduler = dict(
    _delete_=True, type='ConstantLR', factor=1.0, by_epoch=True)
train_cfg = dict(max_epochs=1)
custom_hooks = [dict(type='BNRetrainHook')]
load_from = 'work_dirs/bireal18_8xb16_in1k/epoch_20.pth'
