"""Latency of packed 1-bit Bi-Real-18 against float networks, one run.

    python tools/deployment/benchmark_binary.py [--threads N] [--iters 20]
        [--warmup 5] [--batch 1 8] [--size 224] [--config C --checkpoint K]

Times (median over ``--iters`` runs after ``--warmup`` runs, same thread
count for everything):

* whole networks at each batch size: the packed Bi-Real-18
  (``mmbireal.deploy``), a float ResNet-18 (mmpretrain's ``ResNet(18)`` +
  global pooling + fc) and the float-emulated Bi-Real-18 (the training
  graph in eval mode);
* one 3x3 conv per stage (56x56x64, 28x28x128, 14x14x256, 7x7x512 at
  224 px, stride 1): the float ``F.conv2d`` against the binary conv on
  already packed input, and against the whole binary step (pack the input
  signs, conv, folded BN, residual add, pack the output signs).

Without ``--checkpoint`` the weights are random, which does not change the
latency. Measure on an otherwise idle machine.
"""
import argparse
import os.path as osp
import platform
import statistics
import tempfile
import time
from typing import Callable, List, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmbireal.apis import build_model
from mmbireal.deploy import (
    engine_weight_layout,
    export_packed,
    get_engine,
    load_packed,
    pack_signs_torch,
)
from mmbireal.utils.launch import fail

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEFAULT_CONFIG = osp.join(REPO, 'configs', 'birealnet',
                          'bireal18_8xb16_in1k.py')
STAGES = ((56, 64), (28, 128), (14, 256), (7, 512))  # at 224 px


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Packed 1-bit Bi-Real-18 vs float networks')
    parser.add_argument('--threads', type=int, default=None,
                        help='torch/OpenMP threads (default: torch default)')
    parser.add_argument('--iters', type=int, default=20,
                        help='timed runs per measurement (median reported)')
    parser.add_argument('--warmup', type=int, default=5,
                        help='untimed runs before timing')
    parser.add_argument('--batch', type=int, nargs='+', default=[1, 8],
                        help='batch sizes (default: 1 8)')
    parser.add_argument('--size', type=int, default=224,
                        help='input height and width (default 224)')
    parser.add_argument('--config', default=DEFAULT_CONFIG,
                        help='Bi-Real-18 config (ImageNet stem)')
    parser.add_argument('--checkpoint', default=None,
                        help='weights to load (default: random)')
    args = parser.parse_args(argv)
    bad_threads = args.threads is not None and args.threads < 1
    if (args.iters < 1 or args.warmup < 0 or args.size < 8 or bad_threads
            or min(args.batch) < 1):
        parser.error('need --iters >= 1, --warmup >= 0, --size >= 8, '
                     '--threads >= 1, --batch >= 1')
    return args


def median_ms(fn: Callable[[], object], iters: int, warmup: int) -> float:
    """Median wall time of ``fn()`` in milliseconds."""
    with torch.no_grad():
        for _ in range(warmup):
            fn()
        times = []
        for _ in range(iters):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def float_resnet18() -> nn.Module:
    """ResNet-18 (mmpretrain) with the 1000-class head, eval mode."""
    from mmpretrain.models import ResNet

    class Classifier(nn.Module):

        def __init__(self) -> None:
            super().__init__()
            self.backbone = ResNet(18)
            self.fc = nn.Linear(512, 1000)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            feat = self.backbone(x)[-1]
            return self.fc(feat.mean(dim=(2, 3)))

    return Classifier().eval()


def cpu_name() -> str:
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or 'unknown CPU'


def print_table(header: List[str], rows: List[List[str]]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows])
              for i in range(len(header))]
    line = '  '.join(h.ljust(w) if i == 0 else h.rjust(w)
                     for i, (h, w) in enumerate(zip(header, widths)))
    print(line)
    print('-' * len(line))
    for row in rows:
        print('  '.join(c.ljust(w) if i == 0 else c.rjust(w)
                        for i, (c, w) in enumerate(zip(row, widths))))


def bench_networks(args: argparse.Namespace, float_bireal: nn.Module,
                   packed: nn.Module, resnet: nn.Module) -> None:
    rows = []
    for batch in args.batch:
        x = torch.randn(batch, 3, args.size, args.size)
        t_res = median_ms(lambda x=x: resnet(x), args.iters, args.warmup)
        t_emu = median_ms(lambda x=x: float_bireal(x, mode='tensor'),
                          args.iters, args.warmup)
        t_pack = median_ms(lambda x=x: packed(x), args.iters, args.warmup)
        rows += [
            ['ResNet-18 (float)', str(batch), f'{t_res:.2f}', '1.00x',
             f'{t_res / t_pack:.2f}x'],
            ['Bi-Real-18 float-emulated', str(batch), f'{t_emu:.2f}',
             f'{t_res / t_emu:.2f}x', f'{t_emu / t_pack:.2f}x'],
            [f'Bi-Real-18 packed ({packed.backend})', str(batch),
             f'{t_pack:.2f}', f'{t_res / t_pack:.2f}x', '1.00x'],
        ]
    print(f'\nwhole network, {args.size}x{args.size} input')
    print_table(['model', 'batch', 'median ms', 'speed vs ResNet-18',
                 'packed speed-up'], rows)


def bench_layers(args: argparse.Namespace) -> None:
    engine = get_engine()
    rows = []
    for batch in args.batch:
        for hw224, channels in STAGES:
            hw = max(1, -(-hw224 * args.size // 224))
            gen = torch.Generator().manual_seed(0)
            x = torch.randn(batch, hw, hw, channels, generator=gen)
            weight = torch.randn(channels, channels, 3, 3, generator=gen)
            scale = torch.rand(channels, generator=gen)
            shift = torch.randn(channels, generator=gen)
            x_nchw = x.permute(0, 3, 1, 2).contiguous()
            t_float = median_ms(
                lambda x_nchw=x_nchw, weight=weight: F.conv2d(
                    x_nchw, weight, padding=1), args.iters, args.warmup)
            name = f'{hw}x{hw}x{channels}'
            if engine is None:
                rows.append([name, str(batch), f'{t_float:.3f}', '-', '-',
                             '-'])
                continue
            packed_w = engine_weight_layout(
                pack_signs_torch(weight.permute(0, 2, 3, 1)))
            bits = engine.pack_signs(x)

            # planned once, as a loaded model does
            plain = engine.plan_conv3x3(channels, packed_w, channels, 1)
            fused = engine.plan_conv3x3(channels, packed_w, channels, 1,
                                        scale, shift)

            def conv_only(bits=bits, plain=plain) -> object:
                return plain(bits, want_out=False, want_dot=True)

            def full_step(x=x, fused=fused) -> object:
                return fused(engine.pack_signs(x), x, want_bits=True)

            t_conv = median_ms(conv_only, args.iters, args.warmup)
            t_full = median_ms(full_step, args.iters, args.warmup)
            rows.append([name, str(batch), f'{t_float:.3f}',
                         f'{t_conv:.3f}', f'{t_full:.3f}',
                         f'{t_float / t_conv:.2f}x / '
                         f'{t_float / t_full:.2f}x'])
    print('\none 3x3 conv, stride 1 (1-bit step = pack + conv + BN + add '
          '+ pack)')
    print_table(['layer', 'batch', 'float conv ms', '1-bit conv ms',
                 '1-bit step ms', 'speed-up conv / step'], rows)


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    engine = get_engine()
    print(f'{cpu_name()}; torch {torch.__version__}; '
          f'{torch.get_num_threads()} threads; engine: '
          + (f'{engine.best_simd} ({engine.path})' if engine else
             'not available, PyTorch reference path'))
    try:
        float_bireal = build_model(args.config, args.checkpoint)
    except Exception as e:  # noqa: BLE001 (config/checkpoint: one line)
        fail(f'{type(e).__name__}: {str(e).splitlines()[0]}')
    with tempfile.TemporaryDirectory() as tmp:
        path = osp.join(tmp, 'packed.pth')
        size = export_packed(float_bireal, path)
        packed = load_packed(path)
    print(f'packed file: {size / 1e6:.2f} MB')
    bench_networks(args, float_bireal, packed, float_resnet18())
    bench_layers(args)


if __name__ == '__main__':
    main()
