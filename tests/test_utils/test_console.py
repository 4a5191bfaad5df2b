"""What the benchmark tools print about the machine they measured on."""
import os
import re
import subprocess

from helpers import REPO

from mmbireal.utils.console import SIMD_FLAGS, machine_summary


def test_machine_summary_names_the_cpu_features_and_the_commit():
    line = machine_summary()
    commit = subprocess.run(['git', '-C', REPO, 'rev-parse', 'HEAD'],
                            capture_output=True, text=True).stdout.strip()
    described = re.search(r'mmbireal (\S+)$', line)[1]
    assert commit.startswith(described.removesuffix('-dirty'))
    assert f'; {os.cpu_count()} cores; ' in line
    with open('/proc/cpuinfo') as f:
        flags = set(re.search(r'^flags\s*:(.*)$', f.read(), re.M)[1].split())
    simd = line.split('; ')[2].split()
    assert simd == [f for f in SIMD_FLAGS if f in flags]
