"""Params, FLOPs, BOPs, OPs and memory of a config's model (Bi-Real Net's
efficiency measures; see :mod:`mmbireal.analysis.complexity`).

    python tools/analysis_tools/get_flops.py CONFIG [--shape H [W]] [--json]
        [--cfg-options k=v ...]

Without ``--shape`` the input is the size the config's test pipeline
produces (its ``CenterCrop``/``Resize``; 28 x 28 for the Fashion-MNIST
configs), else 224 x 224 with a note on stderr.

CONFIG may be a path or ``pkg::rel/path.py`` (e.g.
``mmpretrain::resnet/resnet18_8xb32_in1k.py``). With ``--json`` stdout is
one JSON object with the keys ``params``, ``flops``, ``bops``, ``ops`` and
``memory_mbit``; all logging goes to stderr.
"""
import argparse
import contextlib
import json
import os
import sys
from typing import Iterator, List, Optional

from mmengine.config import Config

from mmbireal.analysis import (
    Complexity,
    config_complexity,
    input_channels,
    pipeline_input_size,
)
from mmbireal.utils.config import add_cfg_options
from mmbireal.utils.launch import fail, load_config, run_or_fail

FALLBACK_SHAPE = [224, 224]


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Params, FLOPs, BOPs, OPs and memory of a model')
    parser.add_argument('config', help='config file path or pkg::path')
    parser.add_argument(
        '--shape',
        type=int,
        nargs='+',
        help='input height and width (one value: square); default: the '
        "size of the config's test pipeline (CenterCrop/Resize), else 224")
    parser.add_argument(
        '--json',
        action='store_true',
        help='print one JSON object (params, flops, bops, ops, memory_mbit)')
    add_cfg_options(parser)
    args = run_or_fail(lambda: parser.parse_args(argv))
    if args.shape is None:
        return args
    if len(args.shape) == 1:
        args.shape = args.shape * 2
    if len(args.shape) != 2 or min(args.shape) <= 0:
        parser.error('--shape takes one or two positive ints (H [W])')
    return args


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Send everything written to file descriptor 1 (Python or C) to 2."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def default_shape(cfg: Config, config: str) -> List[int]:
    """The test pipeline's image size; 224 x 224 (said on stderr) if the
    pipeline does not fix one."""
    size = pipeline_input_size(cfg)
    if size is None:
        print(f'note: the test pipeline of {config} has no CenterCrop or '
              f'Resize: counting at {FALLBACK_SHAPE[0]} x {FALLBACK_SHAPE[1]}'
              ' (pass --shape H W for another size)', file=sys.stderr)
        return list(FALLBACK_SHAPE)
    return list(size)


def format_table(config: str, shape: List[int], channels: int,
                 result: Complexity) -> str:
    """A readable table of the figures."""
    rows = [
        ('params', f'{result.params:,}', f'{result.params / 1e6:.2f} M', ''),
        ('FLOPs', f'{result.flops:,}', f'{result.flops:.3g}',
         'real-valued MACs'),
        ('BOPs', f'{result.bops:,}', f'{result.bops:.3g}',
         'binary MACs (1-bit x 1-bit)'),
        ('OPs', f'{result.ops:,.0f}', f'{result.ops:.3g}',
         'FLOPs + BOPs / 64'),
        ('memory', f'{result.memory_mbit:.2f} Mbit', '',
         'binarized weights 1 bit, other params 32 bits'),
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [
        f'config: {config}',
        f'input:  1 x {channels} x {shape[0]} x {shape[1]}',
    ]
    for row in rows:
        cells = [row[0].ljust(widths[0]), row[1].rjust(widths[1]),
                 row[2].rjust(widths[2]), row[3]]
        lines.append('  '.join(cells).rstrip())
    uncounted = ', '.join(
        f'{op} x{n}' for op, n in sorted(result.uncounted_ops.items()))
    lines.append('not counted: BatchNorm (folded at inference)' +
                 (f'; no FLOP handle: {uncounted}' if uncounted else ''))
    return '\n'.join(lines)


def main() -> None:
    args = parse_args()
    with stdout_to_stderr():
        cfg = load_config(args.config)
        if args.cfg_options is not None:
            cfg.merge_from_dict(args.cfg_options)
        if 'model' not in cfg:
            fail(f'config {args.config} defines no model')
        if args.shape is None:
            args.shape = default_shape(cfg, args.config)
        # KeyError: an unknown type in cfg.model; RuntimeError: an input
        # too small for the network
        result = run_or_fail(lambda: config_complexity(cfg, args.shape),
                             also=(KeyError, RuntimeError))
        channels = input_channels(cfg)
    if args.json:
        print(json.dumps(result.to_dict()))
    else:
        print(format_table(args.config, args.shape, channels, result))


if __name__ == '__main__':
    main()
