# ReActNet-style step 2 (the authors' resnet/2_step2): binary weights too
# (sign times the detached per-channel mean |W|, clipped straight-through
# gradient: 'scaled_sign', the authors' HardBinaryConv), initialised from
# step 1; weight decay 0 everywhere; otherwise step 1's recipe.
_base_ = ['./bireal18-react_step1_8xb64_in1k.py']
model = dict(backbone=dict(conv_cfg=dict(weight_binarizer='scaled_sign')))
optim_wrapper = dict(
    optimizer=dict(weight_decay=0),
    paramwise_cfg=dict(_delete_=True, binary_no_decay=True))
custom_hooks = [dict(type='WeightDecayZeroHook')]
load_from = 'work_dirs/bireal18-react_step1_8xb64_in1k/epoch_128.pth'
