"""The per-channel scale alpha = mean|W| of a checkpoint's binary convs.

    python tools/analysis_tools/binary_weight_stats.py CONFIG CHECKPOINT
    python tools/analysis_tools/binary_weight_stats.py CONFIG CHECKPOINT \
        --inverse-mean   # only 1 / mean(alpha), for scripts

CONFIG names the binary model the checkpoint is loaded into (a real-valued
pre-training checkpoint loads into the binary config of the next step: the
keys are the same). The magnitude-aware gradient scales each latent
weight's gradient by its channel's alpha, so these figures say how much
smaller its steps are than an unscaled gradient's; ``run_study.sh`` uses
``--inverse-mean`` as ``paramwise_cfg.binary_lr_mult`` of
``bireal18_lr-alpha_1xb64_fmnist.py``.
"""
import argparse
import statistics

import torch

from mmbireal.apis import build_model
from mmbireal.engine.hooks.flip_ratio_hook import binary_weights_by_stage
from mmbireal.models.binarize_kernels import channel_scale
from mmbireal.utils.config import add_cfg_options
from mmbireal.utils.launch import fail, load_config, run_or_fail


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--inverse-mean', action='store_true',
                        help='print only 1 / mean(alpha)')
    add_cfg_options(parser)
    args = run_or_fail(parser.parse_args)
    model = run_or_fail(lambda: build_model(
        load_config(args.config), args.checkpoint, args.cfg_options),
        also=(KeyError, ))  # an unknown `type` in the model
    stages = binary_weights_by_stage(model)
    if not stages:
        fail(f'{args.config} builds no convs with binarized weights; give '
             'the binary config the checkpoint is loaded into')
    alphas = {
        stage: torch.cat([
            channel_scale(w.detach()).flatten().double() for _, w in params
        ]).tolist()
        for stage, params in stages.items()
    }
    every = [a for values in alphas.values() for a in values]
    if args.inverse_mean:
        print(f'{1 / statistics.mean(every):.6g}')
        return
    print('stage    channels  mean alpha  median     min        max')
    for stage, values in [*alphas.items(), ('all', every)]:
        print(f'{stage:8s} {len(values):8d}  {statistics.mean(values):.4g}'
              f'{"":5s}{statistics.median(values):.4g}{"":5s}'
              f'{min(values):.4g}{"":5s}{max(values):.4g}')
    print(f'1 / mean(alpha) = {1 / statistics.mean(every):.6g}')


if __name__ == '__main__':
    main()
