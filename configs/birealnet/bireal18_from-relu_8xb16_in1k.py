# Ablation: binary training initialised from the ReLU pre-training (step 1a)
# instead of the clip pre-training (step 1c).
_base_ = ['./bireal18_8xb16_in1k.py']
load_from = 'work_dirs/bireal18_relu-pre_8xb32_in1k/epoch_100.pth'
