# The distillation ablation, step 2 (binary weights, from its step 1).
_base_ = ['./bireal18-react_step2_1xb64_fmnist.py']
model = dict(backbone=dict(sign_bias_cfg=None, block_act_cfg=None))
load_from = 'work_dirs/bireal18-distill_step1_1xb64_fmnist/epoch_4.pth'
