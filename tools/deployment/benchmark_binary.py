"""Packed 1-bit Bi-Real-18 against what a CPU user would ship instead.

    python tools/deployment/benchmark_binary.py [--threads 2 1] [--iters 30]
        [--warmup 5] [--batch 1 8] [--size 224]
        [--sections peers roofline] [--config C --checkpoint K]
        [--variants CONFIG ...] [--gap-ms 50]

Reports, each at every ``--threads`` value (the same count for every
runtime) and batch size:

* ``peers``: whole networks in one process, timed in interleaved rounds
  whose order rotates every round, so all see the same machine state. Rows:
  the packed Bi-Real-18 (``mmbireal.deploy``), the float-emulated
  Bi-Real-18 (the training graph in eval mode) and the peers of
  ``peer_runtimes.py``: ResNet-18 fp32 in eager PyTorch, onnxruntime and
  OpenVINO (fp32 and its default precision), ResNet-18 int8 in onnxruntime
  (static QDQ, per-channel) and OpenVINO (NNCF), MobileNetV2 int8 in
  onnxruntime. Each runtime's turn starts on a quiet process and calls it
  twice: the second call is the warm (steady-state) time, the first the
  latency after ``--gap-ms`` of idle time. Each row: both medians, the
  packed model's speed-up in both (median of the per-round time ratios,
  with quartiles), file size and the model's *published* ImageNet top-1.
  Peers whose runtime is missing (the ``bench`` extra: ``pip install
  mmbireal[bench]``) are listed as skipped.
* ``packed``: the same rounds without the peers (the packed and
  float-emulated Bi-Real-18 and the ``--variants``): what a variant such as
  the ReActNet-style network costs against the plain packed model.
* ``roofline``: this CPU's measured peak of XOR + popcount (binary MACs)
  and of fp32 FMA, from micro-kernels in the engine, and per layer of the
  packed model its time, rate and fraction of that peak.

Without ``--checkpoint`` the weights are random, which changes no latency.
Measure on an otherwise idle machine.
"""
import argparse
import os
import os.path as osp
import resource
import statistics
import sys
import tempfile
import time
from typing import Callable, Dict, List, NamedTuple, Optional

import torch

from mmbireal.apis import build_model
from mmbireal.deploy import export_packed, load_packed
from mmbireal.deploy.export import ExportError
from mmbireal.utils.console import machine_summary
from mmbireal.utils.launch import fail

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
import peer_runtimes  # the tool's own sibling module

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEFAULT_CONFIG = osp.join(REPO, 'configs', 'birealnet',
                          'bireal18_8xb16_in1k.py')
SECTIONS = ('peers', 'packed', 'roofline')


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Packed 1-bit Bi-Real-18 vs float and int8 networks')
    parser.add_argument('--threads', type=int, nargs='+', default=None,
                        help='thread counts, each used by every runtime '
                        '(default: torch default)')
    parser.add_argument('--iters', type=int, default=30,
                        help='timed rounds (peers) / runs (layers); the '
                        'median is reported')
    parser.add_argument('--warmup', type=int, default=5,
                        help='untimed runs before timing')
    parser.add_argument('--batch', type=int, nargs='+', default=[1, 8],
                        help='batch sizes (default: 1 8)')
    parser.add_argument('--size', type=int, default=224,
                        help='input height and width (default 224)')
    parser.add_argument('--gap-ms', type=float, default=50.0,
                        help='idle time before each timed call; then the '
                        "tool waits until the process's other threads have "
                        'stopped spinning (default 50)')
    parser.add_argument('--sections', nargs='+', default=list(SECTIONS),
                        choices=SECTIONS, help='reports to print')
    parser.add_argument('--config', default=DEFAULT_CONFIG,
                        help='Bi-Real-18 config (ImageNet stem)')
    parser.add_argument('--checkpoint', default=None,
                        help='weights to load (default: random)')
    parser.add_argument('--variants', nargs='+', default=[],
                        metavar='CONFIG',
                        help='more packed models (random weights) timed in '
                        'the same rounds, e.g. the ReActNet-style config: '
                        'their cost against the first row')
    args = parser.parse_args(argv)
    bad_threads = args.threads is not None and min(args.threads) < 1
    if (args.iters < 1 or args.warmup < 0 or args.size < 8 or bad_threads
            or min(args.batch) < 1 or args.gap_ms < 0):
        parser.error('need --iters >= 1, --warmup >= 0, --size >= 8, '
                     '--threads >= 1, --batch >= 1, --gap-ms >= 0')
    return args


# ---------------------------------------------------------------------------
# timing
# ---------------------------------------------------------------------------
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


def process_cpu_s() -> float:
    """CPU seconds used so far by all threads of this process."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def settle(gap_ms: float, window_s: float = 0.01,
           limit_s: float = 2.0) -> None:
    """Sleep ``gap_ms``, then until the process stays idle for a
    ``window_s`` window (under 10% of a core busy), at most ``limit_s``.

    The runtimes' worker threads spin-wait after their own call: measured
    here, onnxruntime's intra-op pool burns 39-41 ms of CPU in the 50 ms
    after its call (OpenMP and TBB about 1-7 ms), so a fixed 50 ms gap let
    it steal a core from the next runtime in the round at 2 threads."""
    time.sleep(gap_ms / 1e3)
    deadline = time.perf_counter() + limit_s
    while time.perf_counter() < deadline:
        before = process_cpu_s()
        time.sleep(window_s)
        if process_cpu_s() - before < 0.1 * window_s:
            return


class Timings(NamedTuple):
    """Per-round wall times (ms) of one entry."""
    warm: List[float]  # the second of two back-to-back calls
    idle: List[float]  # the first call, on a process idle for ``gap_ms``


def interleaved_ms(fns: Dict[str, Callable[[], object]], rounds: int,
                   warmup: int, gap_ms: float = 0.0) -> Dict[str, Timings]:
    """Per-round wall times of every ``fns`` entry, the order rotated by
    one every round (not reversed: with three or more entries reversal runs
    the outer ones twice in a row, warm).

    Each entry's turn calls it once untimed, then waits for a quiet
    process (:func:`settle`: ``gap_ms``, then until no thread spins, so no
    other runtime's threads are left running), then times two calls back
    to back. The first is the latency after ``gap_ms`` of idle time, the
    same for every runtime: its own threads last ran that long ago.
    Without the untimed call a runtime's pool idles for the rest of the
    round, much longer for some runtimes than for others, and on this VM
    the first call after a long idle costs several times the warm one
    (rerun with a larger ``--gap-ms`` to see it).
    The second is the steady state of a loop of inferences (the runtime's
    threads still awake, as a user's loop keeps them)."""
    order = list(fns)
    times = {name: Timings([], []) for name in order}
    with torch.no_grad():
        for name in order:
            for _ in range(warmup):
                fns[name]()
        for _ in range(rounds):
            for name in order:
                fns[name]()
                settle(gap_ms)
                for series in (times[name].idle, times[name].warm):
                    start = time.perf_counter()
                    fns[name]()
                    series.append(1e3 * (time.perf_counter() - start))
            order = order[1:] + order[:1]
    return times


def speed_up(times: List[float], packed: List[float]) -> str:
    """The median and quartiles of the per-round ratios times / packed."""
    q1, med, q3 = quartiles([a / b for a, b in zip(times, packed)])
    return f'{med:.2f}x [{q1:.2f}-{q3:.2f}]'


def quartiles(values: List[float]) -> tuple:
    """(first quartile, median, third quartile)."""
    if len(values) < 2:
        return values[0], values[0], values[0]
    q1, q2, q3 = statistics.quantiles(values, n=4, method='inclusive')
    return q1, q2, q3


# ---------------------------------------------------------------------------
# printing
# ---------------------------------------------------------------------------
def steal_s() -> Optional[float]:
    """CPU seconds the hypervisor gave to others while this VM's vCPUs had
    work (``steal`` in /proc/stat), or None where it is not reported."""
    try:
        with open('/proc/stat') as f:
            fields = f.readline().split()
        return int(fields[8]) / os.sysconf('SC_CLK_TCK')
    except (OSError, IndexError, ValueError):
        return None


def report_steal(since: Optional[float], start: float) -> None:
    """Print the steal time since ``steal_s() == since`` and its share of
    the wall time since ``start`` (``time.perf_counter()``)."""
    now = steal_s()
    if since is None or now is None:
        return
    share = (now - since) / max(time.perf_counter() - start, 1e-9)
    print(f'host steal time during this section: {now - since:.2f} s '
          f'({100 * share:.1f}% of its time)'
          + ('; other guests ran on our cores: timings are suspect'
             if share >= 0.01 else ''))


def print_table(header: List[str], rows: List[List[str]]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows])
              for i in range(len(header))]
    line = '  '.join(h.ljust(w) if i < 2 else h.rjust(w)
                     for i, (h, w) in enumerate(zip(header, widths)))
    print(line)
    print('-' * len(line))
    for row in rows:
        print('  '.join(c.ljust(w) if i < 2 else c.rjust(w)
                        for i, (c, w) in enumerate(zip(row, widths))))


# ---------------------------------------------------------------------------
# peers
# ---------------------------------------------------------------------------
class Row(NamedTuple):
    name: str
    runtime: str
    model: str  # key of peer_runtimes.PUBLISHED_TOP1; '' for none
    size_bytes: int
    build: Callable[[int], Callable[[], object]]


PACKED = 'Bi-Real-18 packed 1-bit'


def bireal_rows(float_bireal, packed, packed_int8, packed_bytes: int,
                size: int) -> List[Row]:

    def inputs(batch: int) -> torch.Tensor:
        return torch.from_numpy(peer_runtimes.random_inputs(batch, size))

    def build_packed(batch: int, model=packed) -> Callable[[], object]:
        x = inputs(batch)
        return lambda: model(x)

    def build_float(batch: int) -> Callable[[], object]:
        x = inputs(batch)
        return lambda: float_bireal(x, mode='tensor')

    float_bytes = sum(t.numel() * t.element_size()
                      for t in float_bireal.state_dict().values())
    rows = [
        Row(PACKED, f'mmbireal engine ({packed.backend})', 'bireal18',
            packed_bytes, build_packed),
        Row('Bi-Real-18 float-emulated', f'PyTorch {torch.__version__} '
            'eager', 'bireal18', float_bytes, build_float),
    ]
    if packed_int8 is not None:
        rows.insert(1, Row(f'{PACKED}, int8 stem (not exact)',
                           f'mmbireal engine ({packed.backend})', 'bireal18',
                           packed_bytes,
                           lambda b: build_packed(b, packed_int8)))
    return rows


def int8_stem_cost(packed, packed_int8, size: int, images: int = 64) -> str:
    """How far the int8 stem moves the logits of random 8-bit images."""
    gen = torch.Generator().manual_seed(4)
    mean = torch.tensor(packed.meta['mean']).view(1, -1, 1, 1)
    std = torch.tensor(packed.meta['std']).view(1, -1, 1, 1)
    diff, agree, span = 0.0, 0, 0.0
    for _ in range(images // 8):
        pixels = torch.randint(0, 256, (8, packed.in_channels, size, size),
                               generator=gen)
        x = (pixels.float() - mean) / std
        exact, fast = packed(x), packed_int8(x)
        diff = max(diff, (fast - exact).abs().max().item())
        span = max(span, (exact.max() - exact.min()).item())
        agree += int((fast.argmax(1) == exact.argmax(1)).sum())
    return (f'int8 stem vs exact stem on {images} random 8-bit images: '
            f'max |logit diff| {diff:.3g} ({100 * diff / span:.1f}% of the '
            f'logit range), top-1 agreement {100 * agree / images:.0f}% '
            '(random weights: a trained model is the real test)')


def export_or_fail(model: torch.nn.Module, path: str, config: str) -> int:
    """``export_packed``'s file size; a model the benchmark cannot time
    (not packable, or not taking the 3-channel images every runtime gets)
    ends the run in one line."""
    in_channels = getattr(getattr(model, 'backbone', None), 'in_channels',
                          3)
    if in_channels != 3:
        fail(f'{config}: the model takes {in_channels}-channel images; the '
             'benchmark times every runtime on 3-channel images: give a '
             '3-channel config')
    try:
        return export_packed(model, path)
    except ExportError as e:
        fail(f'{config}: {e}')


def variant_rows(configs: List[str], workdir: str, size: int) -> List[Row]:
    """A packed row per config (random weights: the engine's work does not
    depend on their values)."""
    rows = []
    for k, config in enumerate(configs):
        try:
            model = build_model(config)
        except Exception as e:  # noqa: BLE001 (config: one line)
            fail(f'--variants {config}: {type(e).__name__}: '
                 f'{str(e).splitlines()[0]}')
        path = osp.join(workdir, f'variant{k}.pth')
        packed_bytes = export_or_fail(model, path, config)
        packed = load_packed(path)
        name = osp.splitext(osp.basename(config))[0]

        def build(batch: int, packed=packed) -> Callable[[], object]:
            x = torch.from_numpy(peer_runtimes.random_inputs(batch, size))
            return lambda: packed(x)

        # a variant is another network: the paper's top-1 is not its own
        rows.append(Row(f'{PACKED}: {name}',
                        f'mmbireal engine ({packed.backend})', '',
                        packed_bytes, build))
    return rows


def bench_peers(args: argparse.Namespace, threads: int, base: List[Row],
                workdir: str, with_peers: bool = True) -> None:
    """Interleaved rounds of ``base`` and, ``with_peers``, the peer
    runtimes' networks; ratios against ``base[0]``."""
    peers, skipped = (peer_runtimes.build_peers(workdir, args.size, threads)
                      if with_peers else ([], []))
    rows = base + [Row(p.name, p.runtime, p.model, p.size_bytes, p.build)
                   for p in peers]
    table = []
    for batch in args.batch:
        fns = {r.name + ' | ' + r.runtime: r.build(batch) for r in rows}
        times = interleaved_ms(fns, args.iters, args.warmup, args.gap_ms)
        ref = times[rows[0].name + ' | ' + rows[0].runtime]
        for r in rows:
            t = times[r.name + ' | ' + r.runtime]
            published = peer_runtimes.PUBLISHED_TOP1.get(r.model)
            top1 = '-' if published is None else f'{published[0]:.1f}'
            table.append([r.name, r.runtime, str(batch)] + [
                cell for mine, base in ((t.warm, ref.warm), (t.idle,
                                                             ref.idle))
                for cell in (f'{statistics.median(mine):.2f}',
                             speed_up(mine, base))
            ] + [f'{r.size_bytes / 1e6:.1f}', top1])
    print(f'\nwhole networks, {args.size}x{args.size}, {threads} thread(s), '
          f'{args.iters} interleaved rounds')
    print_table(['model', 'runtime', 'batch', 'warm ms',
                 'packed speed-up [quartiles]', 'after idle ms',
                 'speed-up [quartiles]', 'file MB', 'top-1 (published)'],
                table)
    print('warm: the second of two back-to-back calls; after idle: the first '
          f'call after >= {args.gap_ms:g} ms with the process idle')
    print('speed-up = median over rounds of (row time / packed time); > 1: '
          'the packed model is faster')
    print('top-1: published ImageNet-1k figures, NOT measured here (int8 '
          'rows quote their float model):')
    for model, (top1, source) in peer_runtimes.PUBLISHED_TOP1.items():
        print(f'  {model}: {top1} ({source})')
    for p in peers:
        if p.check:
            print(f'check {p.name} ({p.runtime}): {p.check}')
    for s in skipped:
        print(f'skipped {s.name}: {s.reason}')


# ---------------------------------------------------------------------------
# roofline
# ---------------------------------------------------------------------------
class Layer(NamedTuple):
    name: str
    kind: str  # 'binary' or 'fp32'
    macs: int
    run: Callable[[], object]


def packed_layers(packed, x: torch.Tensor) -> List[Layer]:
    """The stem conv and every binary conv of ``packed`` as it runs them,
    each with its real input and its multiply-accumulate count."""
    engine = packed.engine
    layers = []
    x = x.float().contiguous(memory_format=torch.channels_last)
    k = packed.stem_weight.shape[-1]
    geometry = packed.stem_geometry

    def stem_conv() -> torch.Tensor:  # padded as the model pads it
        return geometry.conv(x, packed.stem_weight, packed.stem_bias,
                             packed.padding)

    stem = stem_conv()
    layers.append(Layer(
        f'stem {k}x{k} conv -> {stem.shape[2]}x{stem.shape[3]}x'
        f'{stem.shape[1]}', 'fp32',
        stem.numel() * x.shape[1] * k * k, stem_conv))
    stem = geometry.pool(stem, packed.padding)
    feat = stem.permute(0, 2, 3, 1).contiguous()
    bits = engine.pack_signs(feat)
    for b, block in enumerate(packed.blocks):
        identity = block.shortcut(feat)
        for c, conv in enumerate(block.convs):
            last = c == len(block.convs) - 1
            res = identity if last else None
            out, new_bits = conv.forward_native(engine, bits, res, last,
                                                True)
            n, h, w, _ = new_bits.shape
            cout = conv.out_channels
            layers.append(Layer(
                f'block {b} conv {c} -> {h}x{w}x{cout}', 'binary',
                n * h * w * cout * 9 * conv.in_channels,
                lambda conv=conv, bits=bits, res=res, last=last:
                conv.forward_native(engine, bits, res, last, True)))
            bits = new_bits
        feat = out
    return layers


def bench_roofline(args: argparse.Namespace, threads: int, packed) -> None:
    engine = packed.engine
    if engine is None:
        print('\nroofline: skipped (no native engine)')
        return
    peak = {kind: engine.peak_rate(kind, threads)
            for kind in ('binary', 'fp32')}
    print(f'\nroofline, {threads} thread(s), engine {engine.best_simd}: '
          f'measured peak {peak["binary"] / 1e9:.0f} G binary MAC/s '
          f'(XOR + popcount + add), {peak["fp32"] / 1e9:.1f} G fp32 MAC/s '
          '(FMA)')
    rows, bounds = [], []
    for batch in args.batch:
        x = torch.from_numpy(peer_runtimes.random_inputs(batch, args.size))
        total = 0.0
        layers = packed_layers(packed, x)
        for layer in layers:
            t = median_ms(layer.run, args.iters, args.warmup)
            total += t
            rate = layer.macs / (t * 1e-3)
            rows.append([layer.name, layer.kind, str(batch), f'{t:.3f}',
                         f'{layer.macs / 1e6:.0f}', f'{rate / 1e9:.0f}',
                         f'{100 * rate / peak[layer.kind]:.0f}%'])
        whole = median_ms(lambda x=x: packed(x), args.iters, args.warmup)
        rows.append(['(all layers above)', '', str(batch), f'{total:.3f}',
                     '', '', ''])
        rows.append(['(whole forward)', '', str(batch), f'{whole:.3f}', '',
                     '', ''])
        bounds.append(forward_bound(packed, x, layers, peak, whole))
    print_table(['layer', 'MACs', 'batch', 'median ms', 'M MACs',
                 'G MAC/s', 'of peak'], rows)
    for line in bounds:
        print(line)


def downsample_macs(packed, x: torch.Tensor) -> int:
    """Multiply-accumulates of the real-valued 1x1 downsample convs of
    ``packed`` on the NCHW batch ``x``."""
    x = x.float().contiguous(memory_format=torch.channels_last)
    n, _, h, w = packed.stem_geometry.forward(
        x, packed.stem_weight, packed.stem_bias, packed.padding).shape
    macs = 0
    for block in packed.blocks:
        h, w = (h - 1) // block.stride + 1, (w - 1) // block.stride + 1
        if block.has_downsample:
            macs += n * h * w * block.down_weight.numel()
    return macs


def forward_bound(packed, x: torch.Tensor, layers: List[Layer],
                  peak: Dict[str, float], whole_ms: float) -> str:
    """The fastest forward this CPU allows at its measured peaks: every
    MAC of the stem, the binary convs and the downsample convs at the peak
    of its kind (pooling, packing, the head and memory traffic free)."""
    binary = 1e3 * sum(layer.macs for layer in layers
                       if layer.kind == 'binary') / peak['binary']
    fp32 = [1e3 * macs / peak['fp32'] for macs in (
        sum(layer.macs for layer in layers if layer.kind == 'fp32'),
        downsample_macs(packed, x))]
    bound = binary + sum(fp32)
    return (f'batch {x.shape[0]}: bound at the measured peaks '
            f'{bound:.2f} ms = stem {fp32[0]:.2f} + binary convs '
            f'{binary:.2f} + 1x1 downsample {fp32[1]:.2f}; the whole '
            f'forward takes {whole_ms:.2f} ms')


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    peer_runtimes.quiet_runtimes()
    try:
        float_bireal = build_model(args.config, args.checkpoint)
    except Exception as e:  # noqa: BLE001 (config/checkpoint: one line)
        fail(f'{type(e).__name__}: {str(e).splitlines()[0]}')
    with tempfile.TemporaryDirectory() as tmp:
        path = osp.join(tmp, 'packed.pth')
        size = export_or_fail(float_bireal, path, args.config)
        packed = load_packed(path)
        try:
            packed_int8 = load_packed(path, stem='int8')
        except (RuntimeError, ValueError) as e:
            packed_int8 = None
            print(f'int8 stem skipped: {e}')
        engine = packed.engine
        print(f'{machine_summary()}; engine: '
              + (f'{engine.best_simd} ({engine.path})' if engine else
                 'not available, PyTorch reference path'))
        print(f'packed file: {size / 1e6:.2f} MB')
        if packed_int8 is not None:
            print(int8_stem_cost(packed, packed_int8, args.size))
        base = bireal_rows(float_bireal, packed, packed_int8, size,
                           args.size)
        base += variant_rows(args.variants, tmp, args.size)
        for threads in args.threads or [torch.get_num_threads()]:
            torch.set_num_threads(threads)
            if 'peers' in args.sections or 'packed' in args.sections:
                stolen, start = steal_s(), time.perf_counter()
                # 'packed': the same rows, no peers
                bench_peers(args, threads, base, tmp,
                            with_peers='peers' in args.sections)
                report_steal(stolen, start)
            if 'roofline' in args.sections:
                stolen, start = steal_s(), time.perf_counter()
                bench_roofline(args, threads, packed)
                report_steal(stolen, start)


if __name__ == '__main__':
    main()
