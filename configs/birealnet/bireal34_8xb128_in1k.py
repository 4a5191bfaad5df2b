# Step 2 for Bi-Real-34: batch 1024, lr 0.08, 40 epochs, x0.1 at 20 and 30.
_base_ = ['./bireal18_8xb16_in1k.py']
model = dict(backbone=dict(depth=34))
train_dataloader = dict(batch_size=128)
optim_wrapper = dict(optimizer=dict(lr=0.08))
param_scheduler = dict(milestones=[20, 30])
train_cfg = dict(max_epochs=40)
auto_scale_lr = dict(base_batch_size=1024)
load_from = 'work_dirs/bireal34_clip-pre_8xb32_in1k/epoch_20.pth'
