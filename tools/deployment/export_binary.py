"""Export a trained Bi-Real Net to the packed 1-bit inference format.

    python tools/deployment/export_binary.py CONFIG CHECKPOINT OUT \\
        [--cfg-options k=v ...] [--verify]

Every binary 3x3 weight becomes 1 bit (packed along input channels), its
scale alpha and the following BN become one per-channel affine, the real
layers stay fp32, and a small architecture description makes the file
self-contained: ``mmbireal.deploy.load_packed(OUT)`` rebuilds the network
without the config. Prints the file size and the ratio to the float
weights. ``--verify`` also runs one random batch through the float model
and the packed one and prints their largest logit difference.
"""
import argparse
import os
import os.path as osp
from typing import List, Optional

import torch
from mmengine.config import DictAction

from mmbireal.deploy import (
                             ExportError,
                             build_classifier,
                             export_packed,
                             float_state_bytes,
                             load_packed,
)
from mmbireal.utils import CheckpointError
from mmbireal.utils.launch import fail, load_config


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Export a Bi-Real Net to packed 1-bit weights')
    parser.add_argument('config', help='config file of the trained model')
    parser.add_argument('checkpoint', help='checkpoint to export')
    parser.add_argument('out', help='packed file to write, e.g. model.bin.pth')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config entries, key=value')
    parser.add_argument(
        '--verify',
        action='store_true',
        help='compare the packed model with the float one on a random batch')
    return parser.parse_args(argv)


def _mb(size: int) -> str:
    return f'{size:,} bytes ({size / 1e6:.2f} MB)'


def verify(model: torch.nn.Module, path: str) -> str:
    """One random batch through both models: the logit error, relative to
    the float logits' range, and whether the argmax agrees."""
    packed = load_packed(path)
    size = 224 if packed.stem_type == 'imagenet' else 28
    x = torch.randn(2, packed.in_channels, size, size,
                    generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = model(x, mode='tensor')
    out = packed(x)
    err = (out - ref).abs().max().item()
    span = (ref.max() - ref.min()).item() or 1.0
    same = torch.equal(out.argmax(1), ref.argmax(1))
    return (f'verify ({packed.backend} backend, {size}px): max |logit '
            f'difference| {err:.3g} = {err / span:.2g} of the logit range, '
            f'argmax {"agrees" if same else "DIFFERS"}')


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    cfg = load_config(args.config)
    out_dir = osp.dirname(osp.abspath(args.out))
    if not osp.isdir(out_dir) or not os.access(out_dir, os.W_OK):
        fail(f'output directory {out_dir} does not exist or is not '
             'writable')
    try:
        model = build_classifier(cfg, args.checkpoint, args.cfg_options)
        size = export_packed(model, args.out)
    except (CheckpointError, ExportError, FileNotFoundError) as e:
        fail(str(e))
    float_size = float_state_bytes(model)
    ckpt_size = osp.getsize(args.checkpoint)
    print(f'wrote {args.out}')
    print(f'  packed file      {_mb(size)}')
    print(f'  float weights    {_mb(float_size)} (fp32 state_dict): '
          f'{float_size / size:.1f}x larger')
    print(f'  checkpoint file  {_mb(ckpt_size)}: '
          f'{ckpt_size / size:.1f}x larger')
    if args.verify:
        print(verify(model, args.out))


if __name__ == '__main__':
    main()
