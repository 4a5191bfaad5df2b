# The full ReActNet-style recipe at Fashion-MNIST scale, step 2: binary
# weights too ('scaled_sign'), from step 1, weight decay 0, still distilled.
_base_ = ['./bireal18-react_step1_1xb64_fmnist.py']
model = dict(backbone=dict(conv_cfg=dict(weight_binarizer='scaled_sign')))
optim_wrapper = dict(
    optimizer=dict(weight_decay=0),
    paramwise_cfg=dict(_delete_=True, binary_no_decay=True))
custom_hooks = [dict(type='WeightDecayZeroHook'), dict(type='FlipRatioHook')]
load_from = 'work_dirs/bireal18-react_step1_1xb64_fmnist/epoch_4.pth'
