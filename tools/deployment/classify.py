"""Classify image files with a packed 1-bit file or a float checkpoint.

    python tools/deployment/classify.py PACKED IMAGE [IMAGE ...] [--topk 5]
        [--backend auto|native|torch]
    python tools/deployment/classify.py CHECKPOINT IMAGE [IMAGE ...]
        --config CONFIG [--cfg-options k=v ...] [--topk 5] [--device cuda]

``PACKED`` is a file of ``tools/deployment/export_binary.py``, or the
model-zoo name of one shipped in ``configs/birealnet/weights``: it records
the preprocessing and the class names, so no config is needed. With
``--config``, the first argument is a checkpoint of that config, run
through MMPretrain's ``ImageClassificationInferencer`` and the config's
test pipeline, on ``--device`` (default ``cuda`` if available, else
``cpu``; a packed file runs on the CPU). Either way, each image is printed
with its top-k classes, best first, one per line: softmax score, class
index, class name::

    shirt.png
      0.7134  6  Shirt
      0.1202  0  T-shirt/top
"""
import argparse
import contextlib
import os
import os.path as osp
import sys
from typing import Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmpretrain.apis import ImageClassificationInferencer

from mmbireal.apis import build_model
from mmbireal.deploy import config_classes, load_packed
from mmbireal.deploy.file_format import FORMAT
from mmbireal.deploy.images import read_image
from mmbireal.utils import CheckpointError, InputError
from mmbireal.utils.config import add_cfg_options
from mmbireal.utils.launch import fail, load_config, run_or_fail
from mmbireal.utils.model_zoo import shipped_weights_file

# images decoded and run per forward pass: memory bounded by the chunk,
# not by the length of the file list
CHUNK = 64

Ranked = List[Tuple[float, int, Optional[str]]]


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Classify image files with a packed 1-bit Bi-Real Net '
        'or a checkpoint and its config')
    parser.add_argument(
        'model',
        help='packed file (export_binary.py) or the model-zoo name of one '
        'we ship, or a checkpoint with --config')
    parser.add_argument('images', nargs='+', help='image files')
    parser.add_argument(
        '--config', help='the config of CHECKPOINT (float model)')
    parser.add_argument(
        '--topk', type=int, default=5, help='classes per image (default 5)')
    parser.add_argument(
        '--backend',
        choices=['auto', 'native', 'torch'],
        default='auto',
        help='packed file: engine or PyTorch reference path (default auto)')
    parser.add_argument(
        '--device',
        help='with --config: where the float model runs, e.g. cpu, cuda, '
        'cuda:1 (default cuda if available, else cpu)')
    add_cfg_options(parser)
    args = run_or_fail(lambda: parser.parse_args(argv))
    if args.topk < 1:
        fail(f'--topk must be at least 1, got {args.topk}')
    if args.cfg_options and not args.config:
        fail('--cfg-options applies to a config: give --config too')
    if args.config and args.backend != 'auto':
        fail('--backend applies to a packed file, not to --config (the '
             'float model runs in PyTorch)')
    if args.device is None:
        args.device = 'cuda' if torch.cuda.is_available() else 'cpu'
    elif check_device(args.device).type != 'cpu' and not args.config:
        fail(f'--device {args.device} applies to --config: a packed file '
             'runs on the CPU')
    return args


def check_device(name: str) -> torch.device:
    """``name`` as a device, or exit with one line unless this machine
    has it (``'gpu'``, ``'cuda'`` without a GPU, ``'cuda:3'`` of two)."""
    try:
        device = torch.device(name)
        if device.type != 'meta':  # holds no data: nothing to classify
            torch.empty(1, device=device)  # what `model.to(device)` needs
            return device
    # torch.device: RuntimeError; an absent device: RuntimeError,
    # AssertionError (a build without CUDA) or another backend's own type
    except Exception:  # noqa: BLE001
        pass
    count = torch.cuda.device_count()
    cuda = ('' if not count else ', cuda, cuda:0' if count == 1 else
            f', cuda, cuda:0 to cuda:{count - 1}')
    fail(f'--device {name} is not available here; accepted: cpu{cuda}')


def check_readable(paths: Sequence[str]) -> None:
    """Exit with one line at the first path that is not a readable file,
    before any model loads (decoding waits for its chunk)."""
    for path in paths:
        if not osp.isfile(path):
            fail(f'image file not found: {path}')
        if not os.access(path, os.R_OK):
            fail(f'cannot read {path}: permission denied')


def decoded_chunks(paths: Sequence[str],
                   size: int = CHUNK) -> Iterator[List[np.ndarray]]:
    """The images of ``paths`` as BGR arrays, ``size`` at a time: only one
    chunk is held in memory."""
    for start in range(0, len(paths), size):
        yield [run_or_fail(lambda p=path: read_image(p))
               for path in paths[start:start + size]]


def classify_packed(path: str, images: Sequence[str], topk: int,
                    backend: str) -> List[Ranked]:
    """Top-k ``(score, index, name)`` of each image file with a packed
    file."""
    try:
        model = load_packed(path, backend=backend)
    except CheckpointError as e:
        hint = (' (a float checkpoint needs --config)'
                if f'not a {FORMAT} file' in str(e) else '')
        fail(f'{e}{hint}')
    except (FileNotFoundError, InputError) as e:  # or no native engine
        fail(str(e))
    ranked = []
    for chunk in decoded_chunks(images):
        for predictions in run_or_fail(lambda c=chunk: model.classify(
                c, topk)):
            ranked.append([(p.score, p.index, p.name) for p in predictions])
    return ranked


def classify_checkpoint(checkpoint: str, config: str,
                        cfg_options: Optional[dict], images: Sequence[str],
                        topk: int, device: str = 'cpu') -> List[Ranked]:
    """Top-k ``(score, index, name)`` of each image file with MMPretrain's
    inferencer on the model of ``config`` and ``checkpoint``, on
    ``device``."""
    cfg = load_config(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    checkpoint = run_or_fail(lambda: shipped_weights_file(checkpoint))
    model = run_or_fail(lambda: build_model(cfg, checkpoint, device=device),
                        also=(KeyError, ))  # an unknown `type` in the model
    model._config = cfg  # what the inferencer reads its pipeline from
    classes = config_classes(cfg)
    fc = getattr(getattr(model, 'head', None), 'fc', None)
    outputs = getattr(fc, 'out_features', None)
    if classes is not None and outputs is not None \
            and len(classes) != outputs:
        fail(f'{config} names {len(classes)} classes but the model has '
             f'{outputs} outputs; give the config the checkpoint was '
             'trained with')
    inferencer = ImageClassificationInferencer(
        model, pretrained=False, classes=classes)
    ranked = []
    # the inferencer's progress bar goes to stdout, in the middle of the
    # results (e.g. with CI=true): keep stdout for the results
    with contextlib.redirect_stdout(sys.stderr):
        results = [result for chunk in decoded_chunks(images)
                   for result in inferencer(chunk, batch_size=CHUNK)]
    for result in results:
        scores = result['pred_scores']
        order = np.argsort(-scores, kind='stable')[:topk]
        ranked.append([(float(scores[i]), int(i),
                        classes[i] if classes else None) for i in order])
    return ranked


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    check_readable(args.images)
    if args.config:
        ranked = classify_checkpoint(args.model, args.config,
                                     args.cfg_options, args.images, args.topk,
                                     args.device)
    else:
        ranked = classify_packed(args.model, args.images, args.topk,
                                 args.backend)
    for path, top in zip(args.images, ranked):
        print(path)
        for score, index, name in top:
            print(f'  {score:.4f}  {index}  {name or ""}'.rstrip())


if __name__ == '__main__':
    main()
