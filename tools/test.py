"""Evaluate a checkpoint with an mm-style config (MMPretrain's test.py)."""
import argparse
import os
import os.path as osp

from mmengine.config import Config, ConfigDict
from mmengine.evaluator import DumpResults

import mmbireal  # noqa: F401 (registers modules and the checkpoint loader)
from mmbireal.datasets import check_datasets
from mmbireal.utils import load_checkpoint_file
from mmbireal.utils.launch import (
    add_run_options,
    build_runner,
    check_output_file,
    check_start_checkpoint,
    check_writable_dir,
    exit_test_interrupted,
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


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test (evaluate) a model')
    parser.add_argument(
        'config', help='test config file path or pkg::rel/path.py')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='where to save the evaluation')
    parser.add_argument('--out', help='dump the predictions to this pickle')
    parser.add_argument(
        '--show-dir',
        help='save images with their ground truth and prediction drawn '
        '(every --interval-th test image) to this folder, relative to the '
        'current one as in MMPretrain')
    parser.add_argument(
        '--interval',
        type=int,
        help='with --show-dir: draw every N-th test image (default 1)')
    parser.add_argument(
        '--tta',
        action='store_true',
        help="test-time augmentation with the config's tta_model and "
        'tta_pipeline')
    add_run_options(parser)
    args = run_or_fail(parser.parse_args)
    if args.interval is not None and not args.show_dir:
        fail('--interval needs --show-dir (it picks the test images drawn '
             'there)')
    if args.interval is None:
        args.interval = 1
    if args.interval < 1:
        fail(f'--interval must be at least 1, got {args.interval}')
    if args.out and not args.out.endswith(('.pkl', '.pickle')):
        # mmengine's DumpResults writes pickles only
        fail(f'--out {args.out}: the predictions are dumped as a pickle; '
             'accepted: a file name ending in .pkl or .pickle')
    if args.out:  # before the test set runs, not after
        check_output_file(args.out)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def enable_visualization(cfg: Config, show_dir: str, interval: int) -> None:
    """Draw every ``interval``-th test image with its labels into
    ``show_dir`` (MMPretrain's VisualizationHook; 1-channel images in
    gray, small ones enlarged so the text fits)."""
    hooks = cfg.setdefault('default_hooks', ConfigDict())
    vis = hooks.get('visualization') or ConfigDict(type='VisualizationHook')
    if str(vis.get('type')).split('.')[-1] == 'VisualizationHook':
        vis.type = 'GrayAwareVisualizationHook'
    vis.update(enable=True, out_dir=show_dir, interval=interval)
    hooks.visualization = vis


def use_tta(cfg: Config, config: str) -> None:
    """Wrap the model in the config's ``tta_model`` and test with its
    ``tta_pipeline``, or exit with one line if it has neither."""
    missing = [k for k in ('tta_model', 'tta_pipeline') if not cfg.get(k)]
    if missing:
        fail(f'--tta: config {config} does not set {" and ".join(missing)}; '
             "add e.g. tta_model = dict(type='AverageClsScoreTTA') and a "
             'tta_pipeline ending in TestTimeAug (see '
             'configs/_base_/datasets/fashion_mnist_bs64.py)')
    cfg.model = ConfigDict(**cfg.tta_model, module=cfg.model)
    cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline


def main() -> None:
    warn_other_checkout(__file__)
    args = parse_args()
    try:
        test(args)
    except KeyboardInterrupt:
        exit_test_interrupted(args.out)
    except Exception as e:
        if follows_interrupt(e):
            exit_test_interrupted(args.out)
        raise
    teardown_distributed()


def test(args: argparse.Namespace) -> None:
    """Check the inputs, evaluate the checkpoint, print the metrics."""
    cfg = load_config(args.config)
    # missing, or a folder: one line (a URL is read when the test starts)
    if '://' not in args.checkpoint and not osp.isfile(args.checkpoint):
        run_or_fail(lambda: load_checkpoint_file(args.checkpoint))
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    set_work_dir(cfg, args.work_dir, args.config)
    check_writable_dir(cfg.work_dir)
    run_or_fail(lambda: check_datasets(cfg, splits=('test', )))
    cfg.load_from = args.checkpoint
    cfg.resume = False
    run_or_fail(lambda: check_start_checkpoint(cfg, head_may_differ=False),
                also=(KeyError, ))  # an unknown `type` in the model
    if args.show_dir:
        enable_visualization(cfg, args.show_dir, args.interval)
    if args.tta:  # after the check: it compares the unwrapped model
        use_tta(cfg, args.config)
    setup_distributed(cfg, args.launcher)
    runner = build_runner(cfg, args.verbose)
    if args.out:
        runner.test_evaluator.metrics.append(
            DumpResults(out_file_path=args.out))
    metrics = run_or_fail(runner.test)
    if runner.rank == 0:
        print_metrics(metrics)


if __name__ == '__main__':
    main()
