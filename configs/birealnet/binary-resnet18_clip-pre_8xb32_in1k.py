# Step 1c for the plain 1-bit ResNet-18, as bireal18_clip-pre_8xb32_in1k.py.
_base_ = ['./bireal18_clip-pre_8xb32_in1k.py']
model = dict(backbone=dict(convs_per_shortcut=2))
load_from = 'work_dirs/binary-resnet18_leakyclip-pre_8xb32_in1k/epoch_20.pth'
