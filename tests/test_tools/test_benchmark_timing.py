"""The deployment benchmark's timing: no runtime is timed while another
one's threads still spin, and each turn yields a warm and an after-idle
time."""
import threading
import time

from helpers import import_deployment_tool


def _benchmark():
    return import_deployment_tool('benchmark_binary')


def _spin(seconds: float) -> threading.Thread:
    def busy():
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            pass

    thread = threading.Thread(target=busy)
    thread.start()
    return thread


def test_settle_waits_for_a_spinning_thread():
    bench = _benchmark()
    thread = _spin(0.3)  # like a runtime's pool spinning after its call
    start = time.perf_counter()
    bench.settle(0.0)
    waited = time.perf_counter() - start
    assert not thread.is_alive() or waited > 0.25
    thread.join()
    start = time.perf_counter()
    bench.settle(0.0)  # nothing spins: one quiet window
    assert time.perf_counter() - start < 0.2


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
