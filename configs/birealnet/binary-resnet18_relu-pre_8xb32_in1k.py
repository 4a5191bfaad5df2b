# The paper's shortcut ablation like for like: the plain 1-bit ResNet-18
# (one shortcut per two convs) with the whole procedure. Step 1a: its
# real-valued network, trained as bireal18_relu-pre_8xb32_in1k.py.
_base_ = ['./bireal18_relu-pre_8xb32_in1k.py']
model = dict(backbone=dict(convs_per_shortcut=2))
