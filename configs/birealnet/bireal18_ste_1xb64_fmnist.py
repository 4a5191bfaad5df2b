# Ablation: the plain straight-through estimator instead of ApproxSign.
_base_ = ['./bireal18_1xb64_fmnist.py']
model = dict(backbone=dict(conv_cfg=dict(act_binarizer='ste')))
