# Ablation: a plain 1-bit ResNet-18 (one shortcut per two binary convs, the
# paper's baseline) trained like bireal18_scratch_1xb64_fmnist.py.
_base_ = ['./bireal18_scratch_1xb64_fmnist.py']
model = dict(backbone=dict(convs_per_shortcut=2))
