# Ablation: binary training initialised from the ReLU pre-training (step 1a)
# instead of the clip pre-training (step 1c).
_base_ = ['./bireal18_1xb64_fmnist.py']
load_from = 'work_dirs/bireal18_relu-pre_1xb64_fmnist/epoch_4.pth'
