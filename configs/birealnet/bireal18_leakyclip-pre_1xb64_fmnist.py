# Step 1b: ReLU replaced by leaky-clip, fine-tuned from step 1a.
_base_ = ['./bireal18_relu-pre_1xb64_fmnist.py']
model = dict(
    backbone=dict(act_cfg=dict(type='LeakyClip', min=-1., max=1.,
                               slope=0.1)))
optim_wrapper = dict(optimizer=dict(lr=0.0025))
load_from = 'work_dirs/bireal18_relu-pre_1xb64_fmnist/epoch_4.pth'
