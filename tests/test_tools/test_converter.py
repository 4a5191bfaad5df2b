"""tools/model_converters/bireal_official_to_mmbireal.py on checkpoints of
the authors' layout, built here from a re-implementation of their model."""
import contextlib
import importlib.util
import io
import os.path as osp
from types import ModuleType
from typing import Dict, List, Optional, Tuple

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from helpers import REPO, run_tool
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import load_checkpoint
from mmengine.runner.checkpoint import CheckpointLoader
from torch import Tensor

import mmbireal  # noqa: F401 (registers modules and the checkpoint loader)
from mmbireal.utils import load_checkpoint_file

TOOL = 'tools/model_converters/bireal_official_to_mmbireal.py'
CONFIGS = {
    18: 'configs/birealnet/bireal18_8xb16_in1k.py',
    34: 'configs/birealnet/bireal34_8xb128_in1k.py',
}
BLOCKS = {18: (4, 4, 4, 4), 34: (6, 8, 12, 6)}
# 64 px keeps every downsampling input even (16, 8, 4), where the authors'
# floor-mode AvgPool2d(2, 2) and our ceil-mode pool agree; 112 px would
# reach stage 4 at 7 px, where their shortcut (3) and conv (4) disagree.
SIZE = 64


# --- the authors' model, re-implemented from its description -------------

class _Sign(torch.autograd.Function):
    """sign forward, ApproxSign backward (2 - 2|x| on |x| < 1)."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        ctx.save_for_backward(x)
        return torch.sign(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        x, = ctx.saved_tensors
        return grad * (2 - 2 * x.abs()).clamp(min=0)


class _ClippedSte(torch.autograd.Function):
    """sign forward, 1[|w| <= 1] backward."""

    @staticmethod
    def forward(ctx, w: Tensor) -> Tensor:
        ctx.save_for_backward(w)
        return torch.sign(w)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        w, = ctx.saved_tensors
        return grad * (w.abs() <= 1).to(grad.dtype)


class AuthorsBinaryConv(nn.Module):
    """3x3 conv, weights kept flat, ``alpha * sign(W)`` with alpha detached."""

    def __init__(self, in_chn: int, out_chn: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.shape = (out_chn, in_chn, 3, 3)
        self.weights = nn.Parameter(torch.randn(out_chn * in_chn * 9, 1))

    def forward(self, x: Tensor) -> Tensor:
        w = self.weights.view(self.shape)
        alpha = w.abs().mean(dim=(1, 2, 3), keepdim=True).detach()
        return F.conv2d(x, alpha * _ClippedSte.apply(w), stride=self.stride,
                        padding=1)


class AuthorsBlock(nn.Module):

    def __init__(self, in_chn: int, out_chn: int, stride: int) -> None:
        super().__init__()
        self.binary_conv = AuthorsBinaryConv(in_chn, out_chn, stride)
        self.bn1 = nn.BatchNorm2d(out_chn)
        self.downsample = None
        if stride != 1 or in_chn != out_chn:
            self.downsample = nn.Sequential(
                nn.AvgPool2d(kernel_size=2, stride=2),
                nn.Conv2d(in_chn, out_chn, 1, bias=False),
                nn.BatchNorm2d(out_chn))

    def forward(self, x: Tensor) -> Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        return self.bn1(self.binary_conv(_Sign.apply(x))) + residual


class AuthorsBiRealNet(nn.Module):

    def __init__(self, blocks: Tuple[int, ...],
                 num_classes: int = 1000) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        in_chn = 64
        for s, (num, out_chn) in enumerate(zip(blocks, (64, 128, 256, 512))):
            layers = []
            for i in range(num):
                stride = 2 if s > 0 and i == 0 else 1
                layers.append(AuthorsBlock(in_chn, out_chn, stride))
                in_chn = out_chn
            self.add_module(f'layer{s + 1}', nn.Sequential(*layers))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.bn1(self.conv1(x)))
        for s in range(1, 5):
            x = getattr(self, f'layer{s}')(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))


def randomize(model: nn.Module, gen: torch.Generator) -> None:
    """Random weights and random BN statistics everywhere."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5, generator=gen)
                m.bias.normal_(0, 0.2, generator=gen)
                m.running_mean.normal_(0, 0.2, generator=gen)
                m.running_var.uniform_(0.5, 2.0, generator=gen)
                m.num_batches_tracked.fill_(
                    int(torch.randint(1, 10**6, (), generator=gen)))
            elif isinstance(m, (nn.Conv2d, nn.Linear)):
                for p in m.parameters():
                    p.normal_(0, 0.1, generator=gen)
            elif isinstance(m, AuthorsBinaryConv):
                # normal_ gives an exact 0 about once in 2**24 draws; their
                # sign(0) = 0 differs from ours (+1): tested separately
                m.weights.normal_(0, 0.1, generator=gen)
                m.weights[m.weights == 0] = 1e-3


def authors_checkpoint(depth: int, path: str, seed: int = 0) -> nn.Module:
    """Save a random authors' model the way their script does; return it."""
    gen = torch.Generator().manual_seed(seed)
    model = AuthorsBiRealNet(BLOCKS[depth])
    # one real SGD step for a real optimizer state (momentum buffers)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model(torch.randn(2, 3, SIZE, SIZE, generator=gen)).logsumexp(1).sum() \
        .backward()
    optimizer.step()
    # then random weights and BN statistics, which keep logits moderate
    randomize(model, gen)
    torch.save(
        dict(
            epoch=17,
            state_dict={f'module.{k}': v
                        for k, v in model.state_dict().items()},
            best_top1_acc=torch.tensor(54.321),
            optimizer=optimizer.state_dict()), path)
    return model


# --- helpers ---------------------------------------------------------------

def converter_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        'bireal_official_to_mmbireal', osp.join(REPO, TOOL))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def convert(src: str, dst: str, *extra: str, check: bool = True):
    return run_tool([TOOL, src, dst, *extra], check=check)


def build_mmbireal(depth: int) -> nn.Module:
    init_default_scope('mmpretrain')
    from mmpretrain.registry import MODELS
    return MODELS.build(Config.fromfile(osp.join(REPO,
                                                 CONFIGS[depth])).model)


def max_logit_diff(ours: nn.Module, theirs: nn.Module,
                   seed: int) -> Tuple[float, float]:
    """Max |ours - theirs| and the range of their logits (2 images)."""
    x = torch.randn(2, 3, SIZE, SIZE,
                    generator=torch.Generator().manual_seed(seed))
    ours.eval()
    theirs.eval()
    with torch.no_grad():
        a, b = ours(x, mode='tensor'), theirs(x)
    assert a.shape == b.shape == (2, 1000)
    return (a - b).abs().max().item(), (b.max() - b.min()).item()


def assert_one_line_error(proc, *fragments: str) -> str:
    assert proc.returncode != 0
    assert 'Traceback' not in proc.stderr
    errors = [line for line in proc.stderr.splitlines()
              if line.startswith('error: ')]
    assert len(errors) == 1, proc.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


@pytest.fixture(scope='module')
def converted18(tmp_path_factory) -> Tuple[nn.Module, str, str]:
    root = tmp_path_factory.mktemp('converter')
    src, dst = str(root / 'model_best.pth.tar'), str(root / 'bireal18.pth')
    theirs = authors_checkpoint(18, src)
    printed = io.StringIO()  # in-process: the fast tests use it too
    with contextlib.redirect_stdout(printed):
        converter_module().main([src, dst])  # depth inferred
    assert 'Bi-Real-18' in printed.getvalue()
    assert '122 tensors' in printed.getvalue()
    return theirs, src, dst


# --- conversion ------------------------------------------------------------

def test_depth18_strict_load_and_same_logits(converted18):
    theirs, _, dst = converted18
    ckpt = load_checkpoint_file(dst)  # our weights-only loader reads it
    assert set(ckpt) == {'meta', 'state_dict'}
    assert ckpt['meta']['converted_from'] == 'model_best.pth.tar'
    assert ckpt['meta']['epoch'] == 17 and ckpt['meta']['depth'] == 18
    assert ckpt['meta']['best_top1_acc'] == pytest.approx(54.321, abs=1e-4)
    ours = build_mmbireal(18)
    ours.load_state_dict(ckpt['state_dict'], strict=True)
    # the flat weights reshaped row-major, BN statistics carried over
    flat = theirs.layer3[0].binary_conv.weights
    assert torch.equal(ours.backbone.layer3[0].conv.weight,
                       flat.view(256, 128, 3, 3))
    assert torch.equal(ours.backbone.layer2[0].downsample[2].running_var,
                       theirs.layer2[0].downsample[2].running_var)
    diff, span = max_logit_diff(ours, theirs, seed=1)
    print(f'depth 18: max |logit diff| {diff:.3g}, logit range {span:.3g}')
    assert diff < 1e-4 * span


def test_depth18_through_mmengine_load_checkpoint(converted18):
    """The path of ``tools/test.py CONFIG DST`` (runner ``load_from``)."""
    theirs, _, dst = converted18
    loader = CheckpointLoader._get_checkpoint_loader(dst)
    assert loader.__module__ == 'mmbireal.utils.checkpoint'
    ours = build_mmbireal(18)
    ckpt = load_checkpoint(ours, dst, map_location='cpu', strict=True)
    assert ckpt['meta']['depth'] == 18
    diff, span = max_logit_diff(ours, theirs, seed=2)
    assert diff < 1e-4 * span


@pytest.mark.slow
def test_depth18_tools_test(converted18, tiny_imagenet, tmp_path):
    """tools/test.py evaluates DST on a tiny ImageNet-format folder."""
    _, _, dst = converted18
    options = [f'test_dataloader.dataset.data_root={tiny_imagenet}',
               'test_dataloader.batch_size=4',
               'test_dataloader.num_workers=0']
    proc = run_tool(['tools/test.py', CONFIGS[18], dst, '--work-dir',
                     str(tmp_path), '--cfg-options', *options])
    assert 'accuracy/top1:' in proc.stdout
    log = proc.stdout + proc.stderr
    assert 'missing keys' not in log and 'unexpected key' not in log


@pytest.mark.slow
def test_depth34_explicit_depth_same_logits(tmp_path):
    src, dst = str(tmp_path / 'bireal34.pth.tar'), str(tmp_path / 'b34.pth')
    theirs = authors_checkpoint(34, src, seed=3)
    proc = convert(src, dst, '--depth', '34')
    assert 'Bi-Real-34' in proc.stdout
    ckpt = load_checkpoint_file(dst)
    assert ckpt['meta']['depth'] == 34
    ours = build_mmbireal(34)
    ours.load_state_dict(ckpt['state_dict'], strict=True)
    diff, span = max_logit_diff(ours, theirs, seed=4)
    print(f'depth 34: max |logit diff| {diff:.3g}, logit range {span:.3g}')
    assert diff < 1e-4 * span


# --- bad inputs ------------------------------------------------------------

def edited(src: str, dst: str, drop: Optional[List[str]] = None,
           update: Optional[Dict[str, Tensor]] = None) -> str:
    ckpt = torch.load(src, weights_only=True)
    for key in drop or []:
        del ckpt['state_dict'][key]
    ckpt['state_dict'].update(update or {})
    torch.save(ckpt, dst)
    return dst


@pytest.mark.slow
def test_missing_key_fails_with_one_line(converted18, tmp_path):
    _, src, _ = converted18
    bad = edited(src, str(tmp_path / 'bad.pth'),
                 drop=['module.layer2.1.bn1.running_var'])
    out = str(tmp_path / 'out.pth')
    proc = convert(bad, out, check=False)
    assert_one_line_error(proc, f'cannot convert {bad}', 'missing 1 key',
                          'layer2.1.bn1.running_var')
    assert not osp.exists(out)


@pytest.mark.slow
def test_resnet_layout_fails_with_one_line(tmp_path):
    from torchvision.models import resnet18
    src = str(tmp_path / 'resnet18.pth')
    torch.save(dict(state_dict=resnet18().state_dict()), src)
    proc = convert(src, str(tmp_path / 'out.pth'), check=False)
    assert_one_line_error(proc, f'cannot convert {src}',
                          "not the layout of the authors' Bi-Real Net")


def test_other_bad_inputs_fail_with_one_line(converted18, tmp_path, capsys):
    """main() in-process (the subprocess path is tested above)."""
    _, src, _ = converted18
    conv = converter_module()
    out = str(tmp_path / 'out.pth')
    junk = tmp_path / 'junk.pth'
    junk.write_bytes(b'not a checkpoint')
    cases = [
        ([str(tmp_path / 'nowhere.pth'), out], 'nowhere.pth does not exist'),
        ([str(junk), out], f'cannot read checkpoint {junk}'),
        ([src, out, '--depth', '34'],
         f'cannot convert {src}: it has (4, 4, 4, 4) blocks per stage, '
         '--depth 34 expects (6, 8, 12, 6)'),
        ([src, src], 'is SRC'),
    ]
    for argv, fragment in cases:
        with pytest.raises(SystemExit) as info:
            conv.main(argv)
        assert info.value.code == 2
        err = capsys.readouterr().err
        assert err.count('\n') == 1 and err.startswith('error: ')
        assert fragment in err, err
    assert not osp.exists(out)


@pytest.mark.parametrize('drop,update,message', [
    ([], {'module.layer1.0.binary_conv.weights': torch.zeros(64 * 64 * 9)},
     'layer1.0.binary_conv.weights has shape [36864], expected '
     '[36864, 1] or [64, 64, 3, 3]'),
    ([], {'module.fc.bias': torch.zeros(10)},
     'fc.bias has shape [10], expected [1000]'),
    ([], {'module.layer1.0.binary_conv.alpha': torch.ones(64)},
     '1 unexpected key(s) for Bi-Real-18: layer1.0.binary_conv.alpha'),
    (['module.layer4.3.binary_conv.weights'], {},
     'match neither Bi-Real-18 (4, 4, 4, 4) nor Bi-Real-34'),
    (['module.layer3.1.binary_conv.weights'], {},
     'missing 1 key(s) of Bi-Real-18: layer3.1.binary_conv.weights'),
])
def test_layout_errors(converted18, drop, update, message):
    _, src, _ = converted18
    conv = converter_module()
    ckpt = torch.load(src, weights_only=True)
    for key in drop:
        del ckpt['state_dict'][key]
    ckpt['state_dict'].update(update)
    with pytest.raises(conv.ConversionError) as info:
        conv.convert_checkpoint(ckpt, source=src)
    assert message in str(info.value)
    assert '\n' not in str(info.value)


def test_zero_binary_weights_are_counted(converted18, tmp_path, capsys):
    _, src, dst = converted18
    assert load_checkpoint_file(dst)['meta']['zero_binary_weights'] == 0
    ckpt = torch.load(src, weights_only=True)
    ckpt['state_dict']['module.layer2.3.binary_conv.weights'][[5, 9]] = 0.0
    zeros, out = str(tmp_path / 'zeros.pth'), str(tmp_path / 'out.pth')
    torch.save(ckpt, zeros)
    converter_module().main([zeros, out])
    assert 'warning: 2 binary weight(s) are exactly 0' in \
        capsys.readouterr().out
    assert load_checkpoint_file(out)['meta']['zero_binary_weights'] == 2


def test_bare_state_dict_and_4d_weights_accepted(converted18):
    _, src, dst = converted18
    conv = converter_module()
    state_dict = torch.load(src, weights_only=True)['state_dict']
    key = 'module.layer1.2.binary_conv.weights'
    state_dict[key] = state_dict[key].view(64, 64, 3, 3)
    result = conv.convert_checkpoint(state_dict, depth=18)
    reference = load_checkpoint_file(dst)['state_dict']
    assert list(result['state_dict']) == list(reference)
    assert all(torch.equal(v, reference[k])
               for k, v in result['state_dict'].items())
    assert 'epoch' not in result['meta']
