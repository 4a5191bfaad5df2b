# The magnitude-aware study: scaled_sign with the same 80-epoch budget as
# bireal18_long_8xb16_in1k.py.
_base_ = ['./bireal18_long_8xb16_in1k.py']
model = dict(backbone=dict(conv_cfg=dict(weight_binarizer='scaled_sign')))
