# Ablation: the authors' PyTorch weight gradient (alpha detached,
# 1[|W| <= 1] * grad) instead of the paper's magnitude-aware gradient.
_base_ = ['./bireal18_1xb64_fmnist.py']
model = dict(backbone=dict(conv_cfg=dict(weight_binarizer='scaled_sign')))
