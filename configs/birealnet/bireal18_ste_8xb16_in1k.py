# Ablation (tools/reproduce/run_study.sh --imagenet): the plain
# straight-through estimator instead of ApproxSign.
_base_ = ['./bireal18_8xb16_in1k.py']
model = dict(backbone=dict(conv_cfg=dict(act_binarizer='ste')))
