"""Export a trained Bi-Real Net to the packed 1-bit inference format.

    python tools/deployment/export_binary.py CONFIG CHECKPOINT OUT \\
        [--cfg-options k=v ...] [--verify]
        [--verify-test-set [--float64] [--int8-stem]]

Every binary 3x3 weight becomes 1 bit (packed along input channels), its
scale alpha and the following BN become one per-channel affine, the real
layers stay fp32, and a small architecture description makes the file
self-contained: ``mmbireal.deploy.load_packed(OUT)`` rebuilds the network
without the config, and the file records the config's preprocessing (mean,
std, channel order, test resize and crop) and class names, so
``tools/deployment/classify.py OUT IMAGE ...`` classifies image files with
it. Prints the file size and the ratio to the float
weights. ``--verify`` checks the file layer by layer: the float model
rebuilt from it and the trained one, in float64, each layer given the
trained model's input (so no sign that rounding flips can blur it), must
agree to 1e-5 of each layer's output range; it also runs one random batch
through the packed engine against the float model and its float64 copy,
prints their largest logit differences, and exits 1 if either check fails
(the engine's: logits off by more than a quarter of their range; a sign
that rounding flips moves them by a few percent);
``--verify-test-set`` runs the config's whole test set through both and
prints their top-1 and how many predictions differ.
"""
import argparse
import copy
import functools
import math
import os.path as osp
import sys
from typing import Callable, List, Optional, Tuple

import torch
import torch.nn.functional as F
from mmengine.config import Config
from torch import nn

from mmbireal.apis import build_model
from mmbireal.deploy import (
    ExportError,
    export_packed,
    float_state_bytes,
    load_packed,
)
from mmbireal.models import BinaryConv2d
from mmbireal.utils import load_state_dict_file
from mmbireal.utils.config import add_cfg_options
from mmbireal.utils.launch import (
    check_output_file,
    fail,
    load_config,
    run_or_fail,
)

# images per batch of --verify-test-set (at least; a config's larger
# test batch is kept)
VERIFY_BATCH = 256


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Export a Bi-Real Net to packed 1-bit weights')
    parser.add_argument('config', help='config file of the trained model')
    parser.add_argument('checkpoint', help='checkpoint to export')
    parser.add_argument('out', help='packed file to write, e.g. model.bin.pth')
    add_cfg_options(parser)
    parser.add_argument(
        '--verify',
        action='store_true',
        help='compare the packed model with the float one on a random batch')
    parser.add_argument(
        '--verify-test-set',
        action='store_true',
        help='compare both models on every image of the config\'s test set')
    parser.add_argument(
        '--float64',
        action='store_true',
        help='with --verify-test-set: also run the float model in float64 '
        'and count how often each model\'s prediction differs from it '
        '(about 3x the time)')
    parser.add_argument(
        '--int8-stem',
        action='store_true',
        help="with --verify-test-set: also run the packed model with "
        "load_packed(..., stem='int8') and count the predictions it changes")
    args = run_or_fail(lambda: parser.parse_args(argv))
    for flag in ('float64', 'int8_stem'):
        if getattr(args, flag) and not args.verify_test_set:
            parser.error(f'--{flag.replace("_", "-")} needs '
                         '--verify-test-set')
    return args


def _mb(size: int) -> str:
    return f'{size:,} bytes ({size / 1e6:.2f} MB)'


def _preprocessing(packed) -> str:
    """What the file records for ``classify``, in words."""
    meta = packed.meta
    crop = meta.get('crop_size')
    if meta.get('unreplayed_step'):
        return (f'tensors only: classify() would not reproduce the test '
                f"pipeline's {meta['unreplayed_step']}")
    if crop is None:
        return 'no input size in the test pipeline: tensors only'
    short = meta.get('resize_short')
    steps = (f'short side to {short}, centre crop' if short is not None
             else 'resize to')
    classes = packed.classes
    names = f'{len(classes)} class names' if classes else 'no class names'
    return (f'{steps} {crop[0]}x{crop[1]}, {packed.in_channels} '
            f'channel(s), {names}')


# --verify fails above this logit error of the packed engine against the
# float64 model (relative to its logit range). A pre-sign value within
# rounding of 0 may take either sign in two correct implementations and
# move the logits by a few percent (README: at most 8% seen); a broken
# engine moves them by about their whole range.
VERIFY_TOLERANCE = 0.25
# --verify fails above this difference of a layer rebuilt from the file
# from the trained one (relative to the layer output's range): given the
# same input, only the fp32 storage of the folded affine (about 1e-7) is
# left, while a wrong sign, scale or bias moves it by 1e-3 or more
LAYER_TOLERANCE = 1e-5


@torch.no_grad()
def verify_layers(model: torch.nn.Module, path: str,
                  x: torch.Tensor) -> Tuple[float, str]:
    """The largest difference, relative to the layer output's range,
    between a layer of ``model`` and the same layer of the float model
    rebuilt from the packed file (``path``), and that layer's name.

    Both run in float64 (:func:`float64_model`). The layers compared are
    where the export changes weights: every BN (the binary convs' scale is
    folded into it) and the head's fc. Each output of the rebuilt model is
    replaced by the trained model's before the next layer reads it, so every
    layer gets the trained model's input and a sign that rounding flips in
    one layer cannot spread to the next."""
    trained, rebuilt = float64_model(model), float64_model(model)
    state = load_state_dict_file(path, rebuilt)
    rebuilt.load_state_dict(state, strict=False)  # + the preprocessor's
    ends = [name for name, module in trained.named_modules()
            if isinstance(module, (nn.modules.batchnorm._BatchNorm,
                                   nn.Linear))]
    outputs: dict = {}
    worst = (0.0, '')

    def record(name: str) -> Callable:
        # a copy: the network adds the residual in place into the output
        return lambda module, inputs, output: outputs.__setitem__(
            name, output.clone())

    def compare_and_replace(name: str) -> Callable:
        def hook(module, inputs, output):
            nonlocal worst
            ref = outputs[name]
            span = (ref.max() - ref.min()).item() or 1.0
            err = (output - ref).abs().max().item() / span
            if not math.isfinite(err):  # NaN would never be the largest
                err = math.inf
            worst = max(worst, (err, name))
            return ref.clone()

        return hook

    handles = [trained.get_submodule(name).register_forward_hook(record(name))
               for name in ends]
    handles += [rebuilt.get_submodule(name).register_forward_hook(
        compare_and_replace(name)) for name in ends]
    try:
        trained(x.double(), mode='tensor')
        rebuilt(x.double(), mode='tensor')
    finally:
        for handle in handles:
            handle.remove()
    return worst


def verify(model: torch.nn.Module, path: str) -> Tuple[str, bool]:
    """Whether the packed file computes what ``model`` computes: layer by
    layer (:func:`verify_layers`, within :data:`LAYER_TOLERANCE`), and
    the packed engine on one random batch against the float model and its
    float64 copy (the closest to exact arithmetic): the packed logits'
    error against each, relative to the logit range, whether the argmax
    agrees, and whether it is within :data:`VERIFY_TOLERANCE` of the
    float64 logits. Returns the report and whether both checks pass."""
    packed = load_packed(path)
    size = packed.stem_geometry.image_size
    x = torch.randn(2, packed.in_channels, size, size,
                    generator=torch.Generator().manual_seed(0))
    layer_err, layer = verify_layers(model, path, x)
    layers_ok = layer_err <= LAYER_TOLERANCE
    with torch.no_grad():
        ref = model(x, mode='tensor')
        exact = float64_model(model)(x.double(), mode='tensor')
    out = packed(x)
    parts, engine_ok = [], True
    for name, logits in (('float', ref), ('float64', exact)):
        err = (out.double() - logits.double()).abs().max().item()
        span = (logits.max() - logits.min()).item() or 1.0
        same = torch.equal(out.argmax(1), logits.argmax(1))
        parts.append(f'{name}: max |logit difference| {err:.3g} = '
                     f'{err / span:.2g} of the logit range, argmax '
                     f'{"agrees" if same else "differs"}')
        engine_ok = err / span <= VERIFY_TOLERANCE  # the float64 one decides
    failed = ([f'layer {layer} off by {layer_err:.2g} of its range '
               f'(tolerance {LAYER_TOLERANCE:g})'] if not layers_ok else []
              ) + ([f'engine logits beyond {VERIFY_TOLERANCE:g} of the '
                    'range of the float64 ones'] if not engine_ok else [])
    return (f'verify: every layer rebuilt from the file within '
            f'{layer_err:.2g} of the trained one\'s output range (worst: '
            f'{layer}, float64, each given the trained input); the packed '
            f'engine ({packed.backend} backend, {size}px) against '
            + '; '.join(parts)
            + (f': FAILED ({"; ".join(failed)})' if failed else ''),
            not failed)


def _exact_binary_conv(conv: BinaryConv2d, x: torch.Tensor,
                       weight: torch.Tensor,
                       bias: Optional[torch.Tensor]) -> torch.Tensor:
    """``conv``'s float64 forward on its binarized input (+-1) and weight
    (+-alpha per output channel): the +-1 dot products are integers far
    below 2**24, so an fp32 conv (PyTorch's fast kernels; float64 convs
    run ~5x slower than the fp32 model) gives them exactly, and they are
    scaled by alpha in float64 -- the float64 result, rounded once."""
    alpha = weight.abs().amax(dim=(1, 2, 3))
    dots = F.conv2d(x.float(), weight.sign().float(), None, conv.stride,
                    conv.padding, conv.dilation, conv.groups)
    out = dots.double() * alpha.view(1, -1, 1, 1)
    return out if bias is None else out + bias.view(1, -1, 1, 1)


def float64_model(model: torch.nn.Module) -> torch.nn.Module:
    """A float64 copy of ``model`` (the closest to exact arithmetic we
    have) whose binary convs compute their dot products exactly in fp32
    (:func:`_exact_binary_conv`); ``model`` is a packable network, so every
    binary conv binarizes input and weight."""
    exact = copy.deepcopy(model).double()
    for module in exact.modules():
        if isinstance(module, BinaryConv2d):
            module._conv_forward = functools.partial(_exact_binary_conv,
                                                     module)
    return exact


def verify_test_set(model: torch.nn.Module, path: str, cfg: Config,
                    with_float64: bool = False,
                    with_int8_stem: bool = False) -> str:
    """Both models on the config's test set: top-1 of each, predictions
    that differ, logits further apart than 1e-3 of their range and, with
    ``with_float64``, how often each model's prediction differs from the
    float model run in float64 (the closest to exact arithmetic we have;
    float64 convolutions have no oneDNN kernels, so this pass takes twice
    as long as the other two together). ``with_int8_stem``: the top-1 of
    the packed model with the opt-in int8 stem, and the predictions it
    changes."""
    from mmengine.runner import Runner
    from mmengine.utils import ProgressBar

    packed = load_packed(path)
    exact = float64_model(model) if with_float64 else None
    int8 = load_packed(path, stem='int8') if with_int8_stem else None
    loader_cfg = copy.deepcopy(cfg.test_dataloader)
    # big batches: the packed engine's per-call overhead and the float
    # models' per-layer overhead are paid once per VERIFY_BATCH images
    loader_cfg['batch_size'] = max(int(loader_cfg.get('batch_size', 1)),
                                   VERIFY_BATCH)
    loader = Runner.build_dataloader(loader_cfg)
    count = dict(total=0, float=0, packed=0, exact=0, differ=0, off=0,
                 float_vs_exact=0, packed_vs_exact=0, int8=0, int8_differ=0)
    worst = 0.0
    progress = ProgressBar(len(loader.dataset))
    with torch.no_grad():
        for batch in loader:
            data = model.data_preprocessor(batch, False)
            x = data['inputs']
            labels = torch.cat([s.gt_label for s in data['data_samples']])
            ref, out = model(x, mode='tensor'), packed(x)
            pred_ref, pred_out = ref.argmax(1), out.argmax(1)
            pred_exact = (pred_ref if exact is None else exact(
                x.double(), mode='tensor').argmax(1))
            pred_int8 = pred_out if int8 is None else int8(x).argmax(1)
            span = (ref.max(1).values - ref.min(1).values).clamp(min=1e-12)
            error = (out - ref).abs().max(1).values / span
            worst = max(worst, error.max().item())
            for key, value in (
                    ('total', len(labels)), ('float', pred_ref == labels),
                    ('packed', pred_out == labels),
                    ('exact', pred_exact == labels),
                    ('differ', pred_ref != pred_out),
                    # a pre-sign value within rounding of 0 flips a bit
                    ('off', error > 1e-3),
                    ('float_vs_exact', pred_ref != pred_exact),
                    ('packed_vs_exact', pred_out != pred_exact),
                    ('int8', pred_int8 == labels),
                    ('int8_differ', pred_int8 != pred_out)):
                count[key] += int(value if isinstance(value, int) else
                                  value.sum())
            progress.update(len(labels))
    top1 = {k: 100 * count[k] / count['total']
            for k in ('float', 'packed', 'exact', 'int8')}
    exact_top1 = (f' (float64 float-emulated {top1["exact"]:.2f})'
                  if exact is not None else '')
    against = (f'; against float64: float-emulated differs on '
               f'{count["float_vs_exact"]}, packed on '
               f'{count["packed_vs_exact"]}' if exact is not None else '')
    return (f'\ntest set ({count["total"]} images, {packed.backend} '
            f'backend): top-1 float-emulated {top1["float"]:.2f}, packed '
            f'{top1["packed"]:.2f}{exact_top1}; {count["differ"]} '
            f'predictions differ between float-emulated and packed; '
            f'{count["off"]} images with a logit difference above 1e-3 of '
            f'their logit range (largest: {worst:.2g}){against}' + (
                f'; int8 stem: top-1 {top1["int8"]:.2f}, '
                f'{count["int8_differ"]} predictions differ from packed'
                if int8 is not None else ''))


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    cfg = load_config(args.config)
    if args.cfg_options:  # the exported meta and the test set see them too
        cfg.merge_from_dict(args.cfg_options)
    check_output_file(args.out)
    if osp.exists(args.out) and osp.exists(args.checkpoint) and \
            osp.samefile(args.out, args.checkpoint):
        fail(f'OUT {args.out} is the checkpoint itself: writing it would '
             'replace the trained weights by the packed file; give another '
             'path')
    model = run_or_fail(lambda: build_model(cfg, args.checkpoint),
                        also=(KeyError, ))  # an unknown `type` in the model
    size = run_or_fail(lambda: export_packed(model, args.out, cfg),
                       also=(ExportError, ))
    float_size = float_state_bytes(model)
    print(f'wrote {args.out}')
    print(f'  packed file      {_mb(size)}')
    print(f'  float weights    {_mb(float_size)} (fp32 state_dict): '
          f'{float_size / size:.1f}x larger')
    if '://' not in args.checkpoint:  # a URL has no local size to show
        ckpt_size = osp.getsize(osp.expanduser(args.checkpoint))
        print(f'  checkpoint file  {_mb(ckpt_size)}: '
              f'{ckpt_size / size:.1f}x larger')
    described = _preprocessing(load_packed(args.out, backend='torch'))
    print(f'  for images       {described}')
    verified = True
    if args.verify:
        message, verified = verify(model, args.out)
        print(message)
    if args.verify_test_set:
        # run_or_fail: e.g. --int8-stem on a file the int8 stem cannot serve
        print(run_or_fail(lambda: verify_test_set(
            model, args.out, cfg, args.float64, args.int8_stem)))
    if not verified:
        sys.exit(1)  # the file is written: for inspection


if __name__ == '__main__':
    main()
