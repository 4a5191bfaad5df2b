# Step 1b: ReLU replaced by leaky-clip (identity on (-1, 1), slope 0.1
# outside), fine-tuned from step 1a. The paper gives no fine-tuning
# schedule; ours mirrors the binary step (20 epochs, x0.1 at 10 and 15),
# with step 1a's weight decay (1e-4).
_base_ = ['./bireal34_relu-pre_8xb32_in1k.py']
model = dict(
    backbone=dict(act_cfg=dict(type='LeakyClip', min=-1., max=1.,
                               slope=0.1)))
optim_wrapper = dict(optimizer=dict(lr=0.01))
param_scheduler = dict(
    type='MultiStepLR', by_epoch=True, milestones=[10, 15], gamma=0.1)
train_cfg = dict(max_epochs=20)
load_from = 'work_dirs/bireal34_relu-pre_8xb32_in1k/epoch_100.pth'
