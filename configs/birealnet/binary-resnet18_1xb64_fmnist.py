# Step 2 for the plain 1-bit ResNet-18 (one shortcut per two convs): binary
# training from its own clip pre-training, as bireal18_1xb64_fmnist.py; the
# paper's 45.7 against Bi-Real-18's 56.4 on ImageNet is this comparison.
_base_ = ['./bireal18_1xb64_fmnist.py']
model = dict(backbone=dict(convs_per_shortcut=2))
load_from = 'work_dirs/binary-resnet18_clip-pre_1xb64_fmnist/epoch_4.pth'
