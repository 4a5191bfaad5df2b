# Step 1b for the plain 1-bit ResNet-18, as bireal18_leakyclip-pre_8xb32_in1k.py.
_base_ = ['./bireal18_leakyclip-pre_8xb32_in1k.py']
model = dict(backbone=dict(convs_per_shortcut=2))
load_from = 'work_dirs/binary-resnet18_relu-pre_8xb32_in1k/epoch_100.pth'
