# Step 1c: leaky-clip replaced by clip(-1, x, 1), fine-tuned from step 1b.
_base_ = ['./bireal18_leakyclip-pre_1xb64_fmnist.py']
model = dict(backbone=dict(act_cfg=dict(_delete_=True, type='Clip')))
load_from = 'work_dirs/bireal18_leakyclip-pre_1xb64_fmnist/epoch_4.pth'
