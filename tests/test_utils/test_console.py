"""What the benchmark tools print about the machine they measured on."""
import os
import re
import subprocess

import pytest
from helpers import REPO

from mmbireal.utils.console import SIMD_FLAGS, machine_summary


def test_machine_summary_names_the_cpu_features_and_the_commit():
    line = machine_summary()
    head = subprocess.run(['git', '-C', REPO, 'rev-parse', 'HEAD'],
                          capture_output=True, text=True).stdout.strip()
    if not head:
        pytest.skip('not a git checkout')
    described = re.search(r'mmbireal (\S+)$', line)[1]
    assert len(described) >= 7
    assert head.startswith(described.removesuffix('-dirty'))
    assert f'; {os.cpu_count()} cores; ' in line
    flags = set()
    with open('/proc/cpuinfo') as f:  # x86 'flags', Arm 'Features'
        found = re.search(r'^(?:flags|Features)\s*:(.*)$', f.read(), re.M)
    if found:
        flags = set(found[1].split())
    simd = line.split('; ')[2]
    assert simd == (' '.join(f for f in SIMD_FLAGS if f in flags)
                    or 'flags unknown')


def test_a_runs_summary_line_names_the_commit_the_collector_reads(tmp_path):
    """The summary line a run logs names the checkout's commit, in the
    form the study's collector reads back from the log."""
    from types import SimpleNamespace

    from helpers import import_tool_file

    from mmbireal.utils.console import checkout_commit, environment_summary
    runner = SimpleNamespace(
        world_size=1, distributed=False, seed=3,
        logger=SimpleNamespace(log_file=str(tmp_path / 'run.log')))
    line = environment_summary(runner)
    commit = checkout_commit()
    if not commit:
        pytest.skip('not a git checkout')
    collector = import_tool_file('tools', 'reproduce', 'collect_study.py')
    logged = f'2026/12/07 17:00:00 - mmengine - INFO - {line}'
    assert collector.COMMIT.search(logged)[1] == commit
    assert collector.MACHINE.search(logged)
