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
    with pytest.raises(KeyboardInterrupt):
        with hook.deferring():
            os.kill(os.getpid(), signal.SIGINT)  # handled before kill returns
            assert hook.requested  # only noted: the iteration goes on
            with pytest.raises(KeyboardInterrupt):
                os.kill(os.getpid(), signal.SIGINT)
            hook.after_train_iter(runner=None, batch_idx=0)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


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
