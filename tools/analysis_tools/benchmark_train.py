"""Training-step speed of Bi-Real Net against the float ResNet it replaces.

Builds Bi-Real-18 (or -34) and MMPretrain's ResNet-18 (-34) with the same
1000-class head in one process, feeds both the same input, and times a full
training step (forward, backward, SGD step) alternating between the two
after a warm-up, so both see the same machine state. Prints images/s, the
memory kept for backward (every tensor autograd saves, summed; plus the
CUDA peak on GPU) and the time ratio Bi-Real / ResNet.

    python tools/analysis_tools/benchmark_train.py --depth 18 --batch 16
"""
import argparse
import statistics
import time
from typing import Callable, Dict, List, Optional

import torch
import torch.nn as nn

import mmbireal  # noqa: F401 (registers BiRealNet)
from mmbireal.models import BiRealNet
from mmbireal.utils.console import machine_summary
from mmbireal.utils.launch import fail


def build(arch: str, depth: int) -> nn.Module:
    """``'resnet'``, ``'bireal'`` or ``'bireal-float'`` (Bi-Real's
    architecture with real-valued convs: what the architecture costs
    without binarization)."""
    from mmpretrain.models import ResNet
    if arch == 'resnet':
        backbone = ResNet(depth)
    else:
        backbone = BiRealNet(
            depth, **(dict(conv_cfg=None) if arch == 'bireal-float' else {}))
    return nn.Sequential(backbone, _Head(512))


class _Head(nn.Module):
    """Global average pool + fc on the last stage, as the classifiers."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.fc = nn.Linear(channels, 1000)

    def forward(self, feats):
        return self.fc(feats[-1].mean((2, 3)))


def saved_for_backward_bytes(model: nn.Module, x: torch.Tensor) -> int:
    """Bytes of all tensors autograd keeps for one backward pass."""
    seen: Dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = model(x).float().logsumexp(1).mean()
    del loss
    return sum(seen.values())


def make_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
              amp: bool) -> Callable[[], None]:
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    criterion = nn.CrossEntropyLoss()

    def step() -> None:
        with torch.autocast(x.device.type, enabled=amp,
                            dtype=torch.bfloat16 if x.device.type == 'cpu'
                            else torch.float16):
            loss = criterion(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """The command line (``argv``, default ``sys.argv``); a value out of
    range ends in one line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--depth', type=int, default=18, choices=[18, 34])
    parser.add_argument('--batch', type=int, default=16)
    parser.add_argument('--size', type=int, default=224)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--iters', type=int, default=20,
                        help='timed steps per model (at least 2)')
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--channels-last', action='store_true')
    parser.add_argument('--amp', action='store_true')
    parser.add_argument('--compile', action='store_true',
                        help='torch.compile the models')
    parser.add_argument('--with-float-bireal', action='store_true',
                        help='also time Bi-Real with real-valued convs, to '
                        'split the cost into architecture and binarization')
    parser.add_argument('--profile', type=int, default=0, metavar='STEPS',
                        help='afterwards, run Bi-Real for STEPS more steps '
                        'under torch.profiler and print where the time goes '
                        '(mmbireal::* rows are the binarization kernels)')
    args = parser.parse_args(argv)
    for flag, least in (('iters', 2), ('batch', 1), ('size', 8),
                        ('warmup', 0), ('profile', 0)):
        value = getattr(args, flag)
        if value < least:
            fail(f'--{flag} must be at least {least}, got {value}')
    check_device(args.device)
    return args


def check_device(name: str) -> None:
    """Exit with one line unless ``name`` is the CPU or a CUDA device of
    this machine (the timing synchronises CUDA devices only)."""
    count = torch.cuda.device_count()
    accepted = 'cpu' + (', cuda, cuda:0' if count == 1 else
                        f', cuda, cuda:0 to cuda:{count - 1}' if count else '')
    try:
        device = torch.device(name)
    except RuntimeError:  # e.g. 'gpu'
        device = None
    if device is None or device.type not in ('cpu', 'cuda') or (
            device.type == 'cuda' and (device.index or 0) >= count):
        fail(f'--device {name} is not available here ({count} CUDA '
             f'device(s)); accepted: {accepted}')


def main() -> None:
    args = parse_args()

    torch.manual_seed(0)
    device = torch.device(args.device)
    memory_format = (torch.channels_last
                     if args.channels_last else torch.contiguous_format)
    x = torch.randn(args.batch, 3, args.size, args.size,
                    device=device).to(memory_format=memory_format)
    y = torch.randint(0, 1000, (args.batch, ), device=device)
    archs = {f'ResNet-{args.depth}': 'resnet',
             f'Bi-Real-{args.depth}': 'bireal'}
    if args.with_float_bireal:
        archs[f'float-Bi-Real-{args.depth}'] = 'bireal-float'
    names = list(archs)
    models = {
        name: build(arch, args.depth).to(device, memory_format=memory_format)
        for name, arch in archs.items()
    }
    saved = {n: saved_for_backward_bytes(m, x) for n, m in models.items()}
    if args.compile:
        models = {n: torch.compile(m) for n, m in models.items()}
    steps = {n: make_step(m, x, y, args.amp) for n, m in models.items()}
    peak: Dict[str, int] = {}
    for name, step in steps.items():
        if device.type == 'cuda':
            torch.cuda.reset_peak_memory_stats(device)
        for _ in range(args.warmup):
            step()
        sync(device)
        if device.type == 'cuda':
            peak[name] = torch.cuda.max_memory_allocated(device)

    times: Dict[str, List[float]] = {n: [] for n in steps}
    order = list(steps)
    for _ in range(args.iters):
        # alternate, rotating the order each time, so that the models see
        # the same machine state and none always runs after another. (Not
        # reversing: with three models that runs the outer two twice in a
        # row at every turn, warm, and the middle one never.)
        for name in order:
            sync(device)
            start = time.perf_counter()
            steps[name]()
            sync(device)
            times[name].append(time.perf_counter() - start)
        order = order[1:] + order[:1]

    print(machine_summary())
    print(f'training step (forward + backward + SGD), batch {args.batch}, '
          f'{args.size} px, {device}, threads {torch.get_num_threads()}, '
          f'channels_last {args.channels_last}, amp {args.amp}, '
          f'compile {args.compile}; median of {args.iters} alternating '
          'steps after warm-up')
    header = f"{'model':<17} {'ms/step':>9} {'img/s':>8} {'saved MB':>9}"
    print(header + (f" {'peak MB':>8}" if peak else ''))
    median = {n: statistics.median(t) for n, t in times.items()}
    for name in steps:
        line = (f'{name:<17} {median[name] * 1e3:9.1f} '
                f'{args.batch / median[name]:8.1f} {saved[name] / 2**20:9.1f}')
        if peak:
            line += f' {peak[name] / 2**20:8.1f}'
        print(line)
    # The ratio of back-to-back steps cancels the machine's slow drift
    # (shared VMs: +-5% between runs); its quartiles show the spread.
    pairs = [(names[1], names[0])] + [(n, names[0]) for n in names[2:]]
    if args.with_float_bireal:
        pairs.append((names[1], names[2]))
    for a, b in pairs:
        ratios = [ta / tb for ta, tb in zip(times[a], times[b])]
        q1, q2, q3 = statistics.quantiles(ratios, n=4)
        print(f'time ratio {a} / {b}: {q2:.3f} (median of {len(ratios)} '
              f'back-to-back pairs; quartiles {q1:.3f}-{q3:.3f}; ratio of '
              f'medians {median[a] / median[b]:.3f})')
    print(f'saved-for-backward ratio: {saved[names[1]] / saved[names[0]]:.3f}')
    if args.profile:
        profile_steps(names[1], steps[names[1]], args.profile, device)


def profile_steps(name: str, step: Callable[[], None], num_steps: int,
                  device: torch.device) -> None:
    """Print the ops that took the most time over ``num_steps`` steps and
    the binarization kernels' share."""
    from torch.profiler import ProfilerActivity, profile
    activities = [ProfilerActivity.CPU]
    if device.type == 'cuda':
        activities.append(ProfilerActivity.CUDA)
    with profile(activities=activities) as prof:
        start = time.perf_counter()
        for _ in range(num_steps):
            step()
        sync(device)
        elapsed = time.perf_counter() - start
    events = prof.key_averages()
    print(f'\n{name} under torch.profiler, {num_steps} steps:')
    print(events.table(sort_by='self_cpu_time_total', row_limit=15))
    kernels = [e for e in events if e.key.startswith('mmbireal::')]
    for e in sorted(kernels, key=lambda e: e.key):
        print(f'{e.key:<30} {e.self_cpu_time_total / 1e3 / num_steps:7.2f} '
              f'ms/step ({e.count // num_steps} calls)')
    total = sum(e.self_cpu_time_total for e in kernels) / 1e6
    print(f'binarization kernels: {total / num_steps * 1e3:.1f} ms/step, '
          f'{100 * total / elapsed:.1f}% of the profiled steps '
          f'({elapsed / num_steps * 1e3:.1f} ms/step with the profiler on)')


if __name__ == '__main__':
    main()
