"""Train a model with an mm-style config (MMPretrain's train.py arguments)."""
import argparse
import os
import os.path as osp

import torch
from mmengine.config import Config
from mmengine.device import get_device

import mmbireal  # noqa: F401 (registers modules and the checkpoint loader)
from mmbireal.datasets import check_datasets
from mmbireal.engine.hooks.session_hooks import (
    BinaryWeightDecayCheckHook,
    FinalValidationHook,
    StopOnInterruptHook,
)
from mmbireal.utils import load_checkpoint_file
from mmbireal.utils.launch import (
    add_run_options,
    build_runner,
    check_resume_source,
    check_start_checkpoint,
    check_writable_dir,
    exit_interrupted,
    fail,
    follows_interrupt,
    load_config,
    print_metrics,
    run_or_fail,
    set_work_dir,
    setup_distributed,
    teardown_distributed,
    warn_other_checkout,
)

# the devices mmengine's AmpOptimWrapper accepts (it asserts one of them;
# get_device() may also give 'mps' or 'cpu')
AMP_DEVICES = ('cuda', 'npu', 'mlu', 'musa')


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a model')
    parser.add_argument(
        'config', help='train config file path or pkg::rel/path.py')
    parser.add_argument('--work-dir', help='where to save logs and models')
    parser.add_argument(
        '--resume',
        nargs='?',
        const='auto',
        help='resume from this checkpoint, or without a path from the '
        'latest checkpoint in the work dir')
    parser.add_argument(
        '--amp', action='store_true', help='automatic mixed precision')
    parser.add_argument(
        '--no-validate',
        action='store_true',
        help='do not evaluate checkpoints during training')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='scale the lr by actual / config batch size')
    parser.add_argument(
        '--no-pin-memory',
        action='store_true',
        help='disable pin_memory in the dataloaders')
    parser.add_argument(
        '--no-persistent-workers',
        action='store_true',
        help='disable persistent_workers in the dataloaders')
    add_run_options(parser)
    args = run_or_fail(parser.parse_args)
    device = get_device()
    if args.amp and device not in AMP_DEVICES:
        # mmengine's AmpOptimWrapper asserts this, with a traceback
        fail(f"--amp needs a GPU (mmengine's AmpOptimWrapper runs on "
             f"{', '.join(AMP_DEVICES)}) and this machine's device is "
             f'{device}; run without --amp')
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def merge_args(cfg: Config, args: argparse.Namespace) -> Config:
    """Apply the command-line arguments to the config."""
    if args.no_validate:
        cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    set_work_dir(cfg, args.work_dir, args.config)
    if args.amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.auto_scale_lr:  # after --cfg-options, which may give it
        if not isinstance(cfg.get('auto_scale_lr'), dict) or \
                'base_batch_size' not in cfg.auto_scale_lr:
            fail(f'--auto-scale-lr: {args.config} has no auto_scale_lr = '
                 'dict(base_batch_size=N), the total batch size its lr is '
                 'for; add it to the config or to --cfg-options')
        cfg.auto_scale_lr.enable = True
    # after --cfg-options: resuming must win over a load_from given there
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume
    # a training worker that outlives its epoch keeps its random state, so
    # a run resumed mid-way would augment differently: the exact-resume
    # loop gets new workers each epoch unless the config asks otherwise
    exact_resume = (cfg.get('train_cfg') or {}).get(
        'type') == 'ResumableEpochBasedTrainLoop'
    for field in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(field)
        if loader is None:
            continue
        workers = loader.get('num_workers', 0) > 0
        # pinned memory only helps host-to-GPU copies
        loader.setdefault('pin_memory', torch.cuda.is_available()
                          and not args.no_pin_memory)
        # persistent workers need workers; torch refuses them otherwise
        loader.setdefault(
            'persistent_workers', workers and not args.no_persistent_workers
            and not (exact_resume and field == 'train_dataloader'))
        if args.no_pin_memory:
            loader.pin_memory = False
        if args.no_persistent_workers or not workers:
            loader.persistent_workers = False
        loader.setdefault('collate_fn', dict(type='default_collate'))
    return cfg


def main() -> None:
    warn_other_checkout(__file__)
    args = parse_args()
    cfg = merge_args(load_config(args.config), args)
    try:
        train(cfg, args)
    except KeyboardInterrupt:
        exit_interrupted(cfg.work_dir, args.resume, args.launcher)
    except Exception as e:
        if follows_interrupt(e):
            exit_interrupted(cfg.work_dir, args.resume, args.launcher)
        raise
    teardown_distributed()


def train(cfg: Config, args: argparse.Namespace) -> None:
    """Check the run's inputs, train, print the final validation."""
    epochs = cfg.get('train_cfg', {}).get('max_epochs')
    if epochs is not None and (type(epochs) is not int or epochs < 1):
        fail(f'train_cfg.max_epochs={epochs!r}; accepted: an integer >= 1')
    start = cfg.get('load_from')
    if start and not cfg.get('resume') and '://' not in start and \
            not osp.isfile(osp.expanduser(start)):  # URLs: read at the start
        if osp.isdir(osp.expanduser(start)):
            run_or_fail(lambda: load_checkpoint_file(start))
        fail(f'load_from checkpoint {start} does not exist (train the '
             'previous step first, or pass --cfg-options load_from=None to '
             'start from scratch)')
    check_resume_source(cfg, args.resume)
    check_writable_dir(cfg.work_dir)
    run_or_fail(lambda: check_datasets(cfg))
    run_or_fail(lambda: check_start_checkpoint(cfg, head_may_differ=True),
                also=(KeyError, ))  # an unknown `type` in the model
    setup_distributed(cfg, args.launcher)
    runner = build_runner(cfg, args.verbose)
    final, stop = FinalValidationHook(), StopOnInterruptHook()
    for hook in (final, BinaryWeightDecayCheckHook(), stop):
        runner.register_hook(hook)
    if args.launcher == 'none':
        with stop.deferring():
            run_or_fail(runner.train)
    else:  # every rank must stop at the same step: the launcher decides
        run_or_fail(runner.train)
    if runner.rank == 0 and final.metrics:  # for scripts and humans
        print_metrics(final.metrics)


if __name__ == '__main__':
    main()
