"""The deployment benchmark's timing: no runtime is timed while another
one's threads still spin, and each turn yields a warm and an after-idle
time."""
from types import SimpleNamespace

from helpers import import_deployment_tool


def _benchmark():
    return import_deployment_tool('benchmark_binary')


class _FakeClock:
    """Wall time that moves only when the code sleeps, and the process's
    CPU time, busy at ``busy_until`` (one core) and idle after it."""

    def __init__(self, busy_until: float):
        self.now, self.cpu, self.busy_until = 0.0, 0.0, busy_until
        self.sleeps = []

    def perf_counter(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        busy = max(0.0, min(self.now + seconds, self.busy_until) - self.now)
        self.now += seconds
        self.cpu += busy

    def process_cpu_s(self) -> float:
        return self.cpu


def _settle_with(monkeypatch, busy_until: float, **kwargs) -> _FakeClock:
    bench = _benchmark()
    clock = _FakeClock(busy_until)
    monkeypatch.setattr(bench, 'time', SimpleNamespace(
        sleep=clock.sleep, perf_counter=clock.perf_counter))
    monkeypatch.setattr(bench, 'process_cpu_s', clock.process_cpu_s)
    bench.settle(**kwargs)
    return clock


def test_settle_waits_until_a_spinning_thread_stops(monkeypatch):
    # like a runtime's pool spinning for 0.3 s after its call
    clock = _settle_with(monkeypatch, busy_until=0.3, gap_ms=50.0,
                         window_s=0.01)
    assert clock.sleeps[0] == 0.05  # the gap first
    # then 10 ms windows until the first one with no CPU used
    assert all(s == 0.01 for s in clock.sleeps[1:])
    assert 0.3 <= clock.now <= 0.3 + 2 * 0.01 + 1e-9


def test_settle_returns_after_one_quiet_window(monkeypatch):
    clock = _settle_with(monkeypatch, busy_until=0.0, gap_ms=0.0,
                         window_s=0.01)
    assert clock.sleeps == [0.0, 0.01]


def test_settle_gives_up_at_its_limit(monkeypatch):
    clock = _settle_with(monkeypatch, busy_until=1e9, gap_ms=0.0,
                         window_s=0.01, limit_s=0.5)
    assert 0.5 <= clock.now < 0.5 + 0.01 + 1e-9


def test_interleaved_rounds_time_each_entry_idle_then_warm():
    """Every entry's after-idle call follows its own call by the gap."""
    bench = _benchmark()
    calls = []
    fns = {name: (lambda name=name: calls.append(name)) for name in 'abc'}
    times = bench.interleaved_ms(fns, rounds=3, warmup=1)
    assert calls[:3] == ['a', 'b', 'c']  # warm-up
    # per turn an untimed call (the gap then starts from the entry's own
    # last call) and two timed ones; the order rotated by one every round
    assert calls[3:] == 3 * ['a'] + 3 * ['b'] + 3 * ['c'] + \
        3 * ['b'] + 3 * ['c'] + 3 * ['a'] + \
        3 * ['c'] + 3 * ['a'] + 3 * ['b']
    assert all(len(t.warm) == len(t.idle) == 3 for t in times.values())


def test_forward_bound_counts_each_kind_at_its_peak(tmp_path):
    import torch

    from mmbireal.deploy import export_packed, load_packed
    bench = _benchmark()
    path = str(tmp_path / 'packed.pth')
    export_packed(bench.build_model(bench.parse_args([]).config, None), path)
    packed = load_packed(path, backend='torch')
    x = torch.zeros(2, 3, 224, 224)
    # Bi-Real-18's three 1x1 downsample convs, each 6,422,528 MACs an
    # image: 28 * 28 * 64 * 128 = 14 * 14 * 128 * 256 = 7 * 7 * 256 * 512
    assert bench.downsample_macs(packed, x) == 2 * 3 * 6_422_528
    layers = [bench.Layer('stem', 'fp32', 3e9, None),
              bench.Layer('a', 'binary', 4e12, None),
              bench.Layer('b', 'binary', 2e12, None)]
    line = bench.forward_bound(packed, x, layers,
                               dict(fp32=1e11, binary=1e15), 99.0)
    # stem 3e9 / 1e11 s, binary 6e12 / 1e15 s, downsample 38.5e6 / 1e11 s
    assert line == ('batch 2: bound at the measured peaks 36.39 ms = stem '
                    '30.00 + binary convs 6.00 + 1x1 downsample 0.39; the '
                    'whole forward takes 99.00 ms')
