# Step 1c: leaky-clip replaced by clip(-1, x, 1), fine-tuned from step 1b.
_base_ = ['./bireal34_leakyclip-pre_8xb32_in1k.py']
model = dict(backbone=dict(act_cfg=dict(_delete_=True, type='Clip')))
load_from = 'work_dirs/bireal34_leakyclip-pre_8xb32_in1k/epoch_20.pth'
