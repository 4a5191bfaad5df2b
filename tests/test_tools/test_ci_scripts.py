"""The CI entry point and the shared apt helper, run on stand-ins for the
tests and for apt-get."""
import os
import os.path as osp
import shutil
import signal
import subprocess
import time

import pytest
from helpers import REPO

pytestmark = pytest.mark.slow

# Stands in for tools/run_tests.sh: records its pid, then exits with $EXIT
# or, for EXIT=sleep, waits like a long pytest run that Ctrl-C ends.
FAKE_TESTS = '''echo $$ > "$PIDFILE"
[[ "$EXIT" == sleep ]] || exit "$EXIT"
exec "$PYTHON" -c "
import time
try:
    open('$PIDFILE.ready', 'w').close()  # Ctrl-C is handled from here on
    time.sleep(60)
except KeyboardInterrupt:
    print('tests: KeyboardInterrupt')
    raise SystemExit(2)
"
'''


def ci_tree(tmp_path):
    os.makedirs(tmp_path / '.ci')
    os.makedirs(tmp_path / 'tools')
    # the cross toolchain .ci/run would otherwise install with apt
    os.makedirs(tmp_path / 'bin')
    for tool in ('aarch64-linux-gnu-g++', 'qemu-aarch64'):
        (tmp_path / 'bin' / tool).write_text('#!/bin/sh\n')
        (tmp_path / 'bin' / tool).chmod(0o755)
    shutil.copy(osp.join(REPO, '.ci', 'run'), tmp_path / '.ci' / 'run')
    shutil.copy(osp.join(REPO, 'tools', 'apt_install.sh'), tmp_path / 'tools')
    (tmp_path / 'tools' / 'run_tests.sh').write_text(FAKE_TESTS)
    return tmp_path


def start_ci(tree, exit_with, budget='600'):
    env = dict(os.environ, PIDFILE=str(tree / 'pid'), EXIT=exit_with,
               MMBIREAL_CI_TIMEOUT=budget, PYTHON=shutil.which('python3'),
               PATH=f'{tree / "bin"}{os.pathsep}{os.environ["PATH"]}')
    # a session of its own, like a terminal's foreground job
    return subprocess.Popen(['bash', '.ci/run'], cwd=tree, env=env,
                            start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def wait_for(path, timeout=20.0):
    end = time.monotonic() + timeout
    while not path.exists() or not path.read_text().strip():
        assert time.monotonic() < end, f'{path} never appeared'
        time.sleep(0.05)
    return int(path.read_text())


@pytest.mark.parametrize('exit_with,status,message', [
    ('0', 0, '[ci] passed'),
    ('1', 1, '[ci] FAILED: exit status 1'),
    ('5', 1, '[ci] FAILED: pytest collected no tests'),
])
def test_ci_reports_the_test_status(tmp_path, exit_with, status, message):
    proc = start_ci(ci_tree(tmp_path), exit_with)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == status
    assert out.strip().splitlines()[-1] == message


def test_ci_stops_at_its_time_budget(tmp_path):
    proc = start_ci(ci_tree(tmp_path), 'sleep', budget='2')
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert '[ci] FAILED: timed out after 2s' in out


def test_ctrl_c_reaches_the_tests_under_the_time_limit(tmp_path):
    """`timeout` runs the tests in a process group of their own, which a
    terminal's Ctrl-C does not reach: .ci/run passes it on."""
    tree = ci_tree(tmp_path)
    proc = start_ci(tree, 'sleep')
    tests_pid = wait_for(tree / 'pid')
    end = time.monotonic() + 20
    while not (tree / 'pid.ready').exists():
        assert time.monotonic() < end, 'the stand-in never got ready'
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)  # what the terminal does
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert 'tests: KeyboardInterrupt' in out
    assert '[ci] interrupted (the tests ended with status 2)' in out
    assert not osp.exists(f'/proc/{tests_pid}')


def run_apt_install(tmp_path, uid, tools=('apt-get', 'sudo')):
    """apt_install with stand-ins for apt-get, sudo and id on PATH."""
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    log = tmp_path / 'calls'
    stand_ins = {
        'apt-get': f'echo "apt-get $*" >> {log}',
        'sudo': f'echo sudo >> {log}; exec "$@"',
        'id': f'echo {uid}',
        'env': 'shift; exec "$@"',  # drops DEBIAN_FRONTEND=...
    }
    for name, body in stand_ins.items():
        if name in tools or name in ('id', 'env'):
            path = bin_dir / name
            path.write_text(f'#!/bin/bash\n{body}\n')
            path.chmod(0o755)
    script = (f'source {osp.join(REPO, "tools", "apt_install.sh")}; '
              'apt_install --quiet pkg-a pkg-b')
    proc = subprocess.run([shutil.which('bash'), '-c', script],
                          env=dict(os.environ, PATH=str(bin_dir)),
                          capture_output=True, text=True)
    calls = log.read_text().splitlines() if log.exists() else []
    return proc.returncode, calls


def test_apt_install_as_root_updates_then_installs(tmp_path):
    status, calls = run_apt_install(tmp_path, uid=0)
    assert status == 0
    wait = '-o DPkg::Lock::Timeout=300 -qq'
    assert calls == [
        f'apt-get {wait} update',
        f'apt-get {wait} install -y --no-install-recommends pkg-a pkg-b']


def test_apt_install_goes_through_sudo_for_a_user(tmp_path):
    status, calls = run_apt_install(tmp_path, uid=1000)
    assert status == 0
    assert [c for c in calls if c == 'sudo'] == ['sudo', 'sudo']


@pytest.mark.parametrize('tools,status', [
    (('sudo', ), 3),  # no apt-get
    (('apt-get', ), 4),  # not root and no sudo
])
def test_apt_install_says_what_is_missing(tmp_path, tools, status):
    assert run_apt_install(tmp_path, uid=1000, tools=tools) == (status, [])
