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
    bench = _benchmark()
    calls = []
    fns = {name: (lambda name=name: calls.append(name)) for name in 'abc'}
    times = bench.interleaved_ms(fns, rounds=3, warmup=1)
    assert calls[:3] == ['a', 'b', 'c']  # warm-up
    # two calls per turn, the order rotated by one every round
    assert calls[3:] == ['a', 'a', 'b', 'b', 'c', 'c',
                         'b', 'b', 'c', 'c', 'a', 'a',
                         'c', 'c', 'a', 'a', 'b', 'b']
    assert all(len(t.warm) == len(t.idle) == 3 for t in times.values())
