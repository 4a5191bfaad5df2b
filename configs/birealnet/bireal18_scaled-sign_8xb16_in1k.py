# Ablation: scaled_sign (alpha detached, clipped straight-through gradient,
# the authors' PyTorch release) instead of the magnitude-aware gradient.
_base_ = ['./bireal18_8xb16_in1k.py']
model = dict(backbone=dict(conv_cfg=dict(weight_binarizer='scaled_sign')))
