# The magnitude-aware study: scaled_sign (alpha detached, clipped STE
# gradient) with the same 16-epoch budget as bireal18_long_1xb64_fmnist.py.
_base_ = ['./bireal18_long_1xb64_fmnist.py']
model = dict(backbone=dict(conv_cfg=dict(weight_binarizer='scaled_sign')))
