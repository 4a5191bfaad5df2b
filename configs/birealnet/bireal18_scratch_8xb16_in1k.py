# Ablation: binary training from scratch (no real-valued pre-training).
_base_ = ['./bireal18_8xb16_in1k.py']
load_from = None
