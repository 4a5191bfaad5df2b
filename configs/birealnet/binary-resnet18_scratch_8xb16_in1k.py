# Ablation: a plain 1-bit ResNet-18 (one shortcut per two binary convs, the
# paper's baseline) trained like bireal18_scratch_8xb16_in1k.py.
_base_ = ['./bireal18_scratch_8xb16_in1k.py']
model = dict(backbone=dict(convs_per_shortcut=2))
