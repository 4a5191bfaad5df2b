# Ablation: binary training from scratch (no real-valued pre-training).
_base_ = ['./bireal18_1xb64_fmnist.py']
load_from = None
