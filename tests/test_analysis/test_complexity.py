"""mmbireal.analysis.complexity and tools/analysis_tools/get_flops.py."""
import json
import os
import os.path as osp
import subprocess
import sys
from typing import List

import pytest
import torch
import torch.nn as nn
from helpers import counted, import_tool_file
from mmengine.config import Config

from mmbireal.analysis import (
    analyze_complexity,
    config_complexity,
    is_binary_conv,
    pipeline_input_size,
)
from mmbireal.models import BinaryConv2d, Sign
from mmbireal.utils import InputError
from mmbireal.utils.config import resolve_config_path

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = 'tools/analysis_tools/get_flops.py'
BIREAL18 = 'configs/birealnet/bireal18_8xb16_in1k.py'
QUICK_FMNIST = 'configs/birealnet/bireal18_1xb64-quick_fmnist.py'

# The paper's efficiency table: config, memory (Mbit), OPs.
PAPER = {
    'bireal18': (BIREAL18, 33.6, 1.63e8),
    'bireal34': ('configs/birealnet/bireal34_8xb128_in1k.py', 43.7, 1.93e8),
    'resnet18': ('mmpretrain::resnet/resnet18_8xb32_in1k.py', 374.1, 1.81e9),
    'resnet34': ('mmpretrain::resnet/resnet34_8xb32_in1k.py', 697.3, 3.66e9),
}

# Bi-Real-18 at 224 px by hand. Real: stem 7x7 conv, three 1x1 downsample
# convs (each 6,422,528 MACs), fc 512 x 1000, global average pool 512 x 49.
BIREAL18_FLOPS = 64 * 3 * 49 * 112 * 112 + 3 * 6_422_528 + 512_000 + 25_088
# Binary 3x3 convs: 16 of C -> C at 56/28/14/7 px, but three are C/2 -> C.
_FULL = 64 * 64 * 9 * 56 * 56  # the same for every full-width conv
BIREAL18_BOPS = 16 * _FULL - 3 * _FULL // 2


def run_tool(args: List[str]) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS='2')
    return subprocess.run([sys.executable, TOOL, *args],
                          cwd=REPO,
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=120)


def run_json(args: List[str]) -> dict:
    proc = run_tool([*args, '--json'])
    assert proc.returncode == 0, proc.stderr[-3000:]
    # exactly one JSON object and nothing else on stdout
    assert proc.stdout.count('\n') == 1, proc.stdout
    result = json.loads(proc.stdout)
    assert set(result) == {'params', 'flops', 'bops', 'ops', 'memory_mbit'}
    return result


def assert_paper_row(memory_mbit: float, ops: float, name: str) -> None:
    _, paper_memory, paper_ops = PAPER[name]
    assert memory_mbit == pytest.approx(paper_memory, rel=0.02)
    assert ops == pytest.approx(paper_ops, rel=0.02)


@pytest.mark.parametrize('name', list(PAPER))
def test_paper_table(name):
    result = counted(PAPER[name][0])
    assert_paper_row(result.memory_mbit, result.ops, name)
    assert result.ops == result.flops + result.bops / 64
    if name.startswith('resnet'):
        assert result.bops == 0
    if name == 'bireal18':
        assert result.params == 11_689_512
        assert result.flops == BIREAL18_FLOPS
        assert result.bops == BIREAL18_BOPS


@pytest.mark.parametrize('name', list(PAPER))
@pytest.mark.slow  # the tool in a subprocess
def test_tool_json_paper_table(name):
    result = run_json([PAPER[name][0]])
    assert_paper_row(result['memory_mbit'], result['ops'], name)


def test_real_pretraining_config_has_no_bops():
    result = config_complexity(
        'configs/birealnet/bireal18_clip-pre_8xb32_in1k.py')
    assert result.bops == 0
    # the same topology with real 3x3 convs: all MACs are FLOPs
    assert result.flops == BIREAL18_FLOPS + BIREAL18_BOPS
    assert result.memory_mbit == pytest.approx(11_689_512 * 32 / 1e6)


def single_conv(**binarizers) -> tuple:
    conv = BinaryConv2d(8, 16, 3, stride=2, padding=1, bias=False,
                        **binarizers)
    return conv, torch.randn(1, 8, 9, 9)  # output 5 x 5


MACS = 16 * 8 * 3 * 3 * 5 * 5  # Cout * Cin * k * k * Hout * Wout


def test_binary_conv_macs_are_bops():
    conv, x = single_conv()
    assert is_binary_conv(conv)
    result = analyze_complexity(conv, x)
    assert result.bops == MACS
    assert result.flops == 0
    assert result.ops == MACS / 64
    assert result.memory_bits == 16 * 8 * 9  # 1 bit per weight


def test_real_activation_binary_conv_counts_flops():
    conv, x = single_conv(act_binarizer=None)
    assert not is_binary_conv(conv)
    result = analyze_complexity(conv, x)
    assert result.bops == 0
    assert result.flops == MACS
    # the weights are still binarized: 1 bit each
    assert result.memory_bits == 16 * 8 * 9


def test_real_weight_binary_conv_counts_flops():
    conv, x = single_conv(weight_binarizer=None)
    assert not is_binary_conv(conv)
    result = analyze_complexity(conv, x)
    assert (result.flops, result.bops) == (MACS, 0)
    assert result.memory_bits == 16 * 8 * 9 * 32


class _TwoBitWeights(Sign):
    bits = 2


def test_memory_asks_the_weight_binarizer_for_its_bits():
    conv, x = single_conv(weight_binarizer=_TwoBitWeights())
    assert analyze_complexity(conv, x).memory_bits == 16 * 8 * 9 * 2


def test_mixed_model_splits_binary_from_real():
    model = nn.Sequential(
        BinaryConv2d(8, 16, 3, stride=2, padding=1, bias=False),
        nn.Conv2d(16, 4, 1),
        BinaryConv2d(4, 4, 3, padding=1, act_binarizer=None)).train()
    model[1].eval()
    result = analyze_complexity(model, torch.randn(1, 8, 9, 9))
    assert result.bops == MACS
    assert result.flops == 4 * 16 * 25 + 4 * 4 * 9 * 25
    assert result.params == 16 * 8 * 9 + 4 * 16 + 4 + 4 * 4 * 9 + 4
    # binarized weights 1 bit; the 1x1 conv and both biases 32 bits
    assert result.memory_bits == (16 * 8 * 9 + 4 * 4 * 9 +
                                  32 * (4 * 16 + 4 + 4))
    # every module's mode is restored after the trace
    assert [m.training for m in model] == [True, False, True]


def test_resolve_package_config_path():
    path = resolve_config_path('mmpretrain::resnet/resnet18_8xb32_in1k.py')
    assert osp.isfile(path)
    assert resolve_config_path(BIREAL18) == BIREAL18


@pytest.mark.slow  # the tool in a subprocess
def test_tool_small_grayscale_input():
    result = run_json([QUICK_FMNIST, '--shape', '28', '28'])
    # 1-channel 3x3/1 stem at 28 px; stages at 28/14/7/4 px; 10 classes
    assert result['flops'] == (64 * 1 * 9 * 28 * 28 + 128 * 64 * 14 * 14 +
                               256 * 128 * 7 * 7 + 512 * 256 * 4 * 4 +
                               512 * 10 + 512 * 4 * 4)
    assert result['bops'] > 0
    assert result['ops'] == result['flops'] + result['bops'] / 64


@pytest.mark.slow  # the tool in a subprocess
def test_tool_defaults_to_the_test_crop():
    # no --shape: the Fashion-MNIST test pipeline's 28 px CenterCrop
    assert run_json([QUICK_FMNIST]) == run_json([QUICK_FMNIST, '--shape',
                                                 '28'])
    proc = run_tool([QUICK_FMNIST])
    assert 'input:  1 x 1 x 28 x 28' in proc.stdout
    assert 'note:' not in proc.stderr


@pytest.mark.slow  # the tool in a subprocess
def test_tool_falls_back_to_224_and_says_so():
    # without its CenterCrop (pipeline.2) the pipeline fixes no size
    options = ['--cfg-options',
               'test_dataloader.dataset.pipeline.2.type=PackInputs']
    proc = run_tool([QUICK_FMNIST, *options])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'input:  1 x 1 x 224 x 224' in proc.stdout
    assert 'has no CenterCrop or Resize: counting at 224 x 224' in \
        proc.stderr


def test_pipeline_input_size():
    cfg = Config.fromfile(osp.join(REPO, BIREAL18))
    assert pipeline_input_size(cfg) == (224, 224)
    # mmcv sizes are (w, h)
    cfg.test_dataloader.dataset.pipeline = [
        dict(type='Resize', scale=(64, 48)),
        dict(type='CenterCrop', crop_size=(40, 30))
    ]
    assert pipeline_input_size(cfg) == (30, 40)
    cfg.test_dataloader.dataset.pipeline = [dict(type='ResizeEdge',
                                                 scale=256)]
    assert pipeline_input_size(cfg) is None


@pytest.mark.slow  # the tool in a subprocess
def test_tool_table():
    proc = run_tool([QUICK_FMNIST, '--shape', '28'])
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert 'input:  1 x 1 x 28 x 28' in out
    for label in ('params', 'FLOPs', 'BOPs', 'OPs', 'memory'):
        assert any(line.startswith(label) for line in out.splitlines())
    assert '5,773,312' in out  # the FLOPs of test_tool_small_grayscale_input


@pytest.mark.slow  # the tool in a subprocess
def test_tool_missing_config():
    proc = run_tool(['configs/birealnet/no_such_config.py', '--json'])
    assert proc.returncode != 0
    assert proc.stdout == ''
    lines = proc.stderr.strip().splitlines()
    assert lines == [
        'error: config file configs/birealnet/no_such_config.py does not '
        'exist; accepted: a config file, e.g. configs/birealnet/'
        'bireal18_8xb16_in1k.py, or mmbireal::birealnet/NAME.py'
    ]


def test_a_bad_input_shape_is_an_input_error():
    with pytest.raises(InputError, match=r'shape must be \(H, W\) > 0, got '
                       r'\(28, 0\)'):
        config_complexity(osp.join(REPO, QUICK_FMNIST), (28, 0))


def test_tool_a_missing_teacher_config_is_one_line(tmp_path, capfd,
                                                    monkeypatch):
    """Errors of building the model are the tools' usual ones: here a
    FileNotFoundError (before: its traceback)."""
    config = tmp_path / 'distill.py'
    config.write_text(
        f"_base_ = '{REPO}/configs/birealnet/"
        "bireal18-react_step1_1xb64_fmnist.py'\n"
        "model = dict(teacher_cfg='/nonexistent/teacher.py')\n")
    tool = import_tool_file('tools', 'analysis_tools', 'get_flops.py')
    monkeypatch.setattr(sys, 'argv', [TOOL, str(config)])
    with pytest.raises(SystemExit) as info:
        tool.main()
    assert info.value.code == 2
    err = capfd.readouterr().err.strip().splitlines()
    assert err[-1].startswith('error: ') and 'teacher.py' in err[-1]
    assert not any('Traceback' in line for line in err)
