"""Evaluate a checkpoint with an mm-style config (MMPretrain's test.py)."""
import argparse
import os
import os.path as osp

from mmengine.config import DictAction
from mmengine.evaluator import DumpResults
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

import mmbireal  # noqa: F401 (registers modules and the checkpoint loader)
from mmbireal.datasets import check_datasets
from mmbireal.utils.launch import (
    check_start_checkpoint,
    check_writable_dir,
    fail,
    load_config,
    run_or_fail,
    setup_distributed,
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test (evaluate) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='where to save the evaluation')
    parser.add_argument('--out', help='dump the predictions to this pickle')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config entries, key=value')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def main() -> None:
    args = parse_args()
    cfg = load_config(args.config)
    if not osp.isfile(args.checkpoint):
        fail(f'checkpoint {args.checkpoint} does not exist')
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    check_writable_dir(cfg.work_dir)
    run_or_fail(lambda: check_datasets(cfg, splits=('test', )))
    cfg.load_from = args.checkpoint
    cfg.resume = False
    run_or_fail(lambda: check_start_checkpoint(cfg, head_may_differ=False),
                also=(KeyError, ))  # an unknown `type` in the model
    setup_distributed(cfg, args.launcher)
    runner = run_or_fail(
        lambda: RUNNERS.build(cfg)
        if 'runner_type' in cfg else Runner.from_cfg(cfg),
        also=(KeyError, ))  # an unknown `type` in the config
    if args.out:
        runner.test_evaluator.metrics.append(
            DumpResults(out_file_path=args.out))
    metrics = run_or_fail(runner.test)
    if runner.rank == 0:
        for name, value in metrics.items():
            print(f'{name}: {value:.2f}' if isinstance(value, float) else
                  f'{name}: {value}')


if __name__ == '__main__':
    main()
