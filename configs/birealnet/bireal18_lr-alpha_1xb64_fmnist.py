# The magnitude-aware study: the magnitude-aware gradient scales each latent
# weight's gradient by its channel's alpha = mean|W| (0.0225 on average
# after clip pre-training), so its steps are about 44x smaller than
# scaled_sign's at the same lr. Here the binary weights' lr is multiplied
# by 1 / mean(alpha) of the starting checkpoint:
# tools/reproduce/run_study.sh measures it per seed
# (tools/analysis_tools/binary_weight_stats.py --inverse-mean) and passes
# optim_wrapper.paramwise_cfg.binary_lr_mult. Run alone, the missing value
# is an error.
_base_ = ['./bireal18_1xb64_fmnist.py']
optim_wrapper = dict(paramwise_cfg=dict(binary_lr_mult=None))
