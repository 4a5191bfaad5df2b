# The magnitude-aware study (tools/reproduce/run_study.sh --study): the
# binary step with 4x the budget, 16 epochs, x0.1 at 8 and 12 (the same
# half / three-quarter points as the 4-epoch run).
_base_ = ['./bireal18_1xb64_fmnist.py']
param_scheduler = dict(milestones=[8, 12])
train_cfg = dict(max_epochs=16)
