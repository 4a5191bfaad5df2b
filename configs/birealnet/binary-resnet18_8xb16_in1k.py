# Step 2 for the plain 1-bit ResNet-18 (one shortcut per two convs): binary
# training from its own clip pre-training, as bireal18_8xb16_in1k.py; the
# paper reports about 45.7 top-1 for it against Bi-Real-18's 56.4.
_base_ = ['./bireal18_8xb16_in1k.py']
model = dict(backbone=dict(convs_per_shortcut=2))
load_from = 'work_dirs/binary-resnet18_clip-pre_8xb32_in1k/epoch_20.pth'
