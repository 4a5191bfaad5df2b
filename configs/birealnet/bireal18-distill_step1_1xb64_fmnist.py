# The distillation ablation, step 1: the ReActNet-style recipe without
# RSign and RPReLU (plain signs, no activation after the residual add).
_base_ = ['./bireal18-react_step1_1xb64_fmnist.py']
model = dict(backbone=dict(sign_bias_cfg=None, block_act_cfg=None))
