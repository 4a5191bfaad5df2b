# The magnitude-aware study: the binary step with 4x the budget, 80 epochs,
# x0.1 at 40 and 60 (the same half / three-quarter points as the paper's).
_base_ = ['./bireal18_8xb16_in1k.py']
param_scheduler = dict(milestones=[40, 60])
train_cfg = dict(max_epochs=80)
