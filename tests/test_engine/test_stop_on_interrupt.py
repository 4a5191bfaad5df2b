"""StopOnInterruptHook: Ctrl-C stops after the running iteration; an
ignored SIGINT stays ignored."""
import os
import signal

import pytest

from mmbireal.engine.hooks.session_hooks import StopOnInterruptHook


@pytest.fixture
def sigint_default():
    """SIGINT as in a terminal, also when pytest runs as a background job
    (which starts with it ignored)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_first_ctrl_c_waits_for_the_iteration_the_second_stops_at_once(
        sigint_default):
    hook = StopOnInterruptHook()
    with hook.deferring():
        os.kill(os.getpid(), signal.SIGINT)  # handled before kill returns
        noted = hook.requested  # only noted: the iteration goes on
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert noted
    with pytest.raises(KeyboardInterrupt):  # the end of the iteration
        hook.after_train_iter(runner=None, batch_idx=0)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_without_ctrl_c_the_iteration_ends_as_usual(sigint_default):
    hook = StopOnInterruptHook()
    with hook.deferring():
        pass
    hook.after_train_iter(runner=None, batch_idx=0)
    assert not hook.requested


def test_an_error_after_a_ctrl_c_stops_as_the_interrupt(sigint_default):
    """A data-loader worker stopped by the signal fails with its own error:
    it is the Ctrl-C's consequence, reported as the interrupt."""
    hook = StopOnInterruptHook()
    with pytest.raises(KeyboardInterrupt) as stopped:
        with hook.deferring():
            os.kill(os.getpid(), signal.SIGINT)
            raise RuntimeError('DataLoader worker exited unexpectedly')
    assert isinstance(stopped.value.__cause__, RuntimeError)
    with pytest.raises(RuntimeError):  # without a Ctrl-C: the error itself
        with StopOnInterruptHook().deferring():
            raise RuntimeError('a bug')


def test_an_ignored_sigint_stays_ignored():
    """A shell script's background job starts with SIGINT ignored, so that
    a Ctrl-C meant for the script does not stop it; Python keeps that, and
    so must the hook."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        hook = StopOnInterruptHook()
        with hook.deferring():
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGINT)
        assert not hook.requested
        hook.after_train_iter(runner=None, batch_idx=0)  # no stop
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
