# Step 1c for the plain 1-bit ResNet-18, as bireal18_clip-pre_1xb64_fmnist.py.
_base_ = ['./bireal18_clip-pre_1xb64_fmnist.py']
model = dict(backbone=dict(convs_per_shortcut=2))
load_from = 'work_dirs/binary-resnet18_leakyclip-pre_1xb64_fmnist/epoch_4.pth'
