# Step 2 of the RSign/RPReLU ablation: binary weights too ('scaled_sign',
# the authors' HardBinaryConv), from step 1, weight decay 0.
_base_ = ['./bireal18-rsign-rprelu_step1_1xb64_fmnist.py']
model = dict(backbone=dict(conv_cfg=dict(weight_binarizer='scaled_sign')))
optim_wrapper = dict(
    optimizer=dict(weight_decay=0),
    paramwise_cfg=dict(_delete_=True, binary_no_decay=True))
custom_hooks = [dict(type='WeightDecayZeroHook'), dict(type='FlipRatioHook')]
load_from = 'work_dirs/bireal18-rsign-rprelu_step1_1xb64_fmnist/epoch_4.pth'
