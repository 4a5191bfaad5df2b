"""Compare the converted larq-zoo Bi-Real Net with larq-zoo's own logits.

Reads what ``larq_zoo_reference.py`` wrote to DIR (in the TensorFlow venv),
converts ``DIR/birealnet_random.h5`` with ``larq_zoo_to_mmbireal.py``,
builds ``configs/birealnet/bireal18_larq-zoo_in1k.py`` (at the file's width
and number of classes) and compares its eval logits with larq-zoo's:

* float64, all inputs: within ``--tol`` (1e-4) of the logit range;
* float32, the clean inputs (no pre-sign value within 10x float32 rounding
  of zero): within ``--tol`` too;
* float32, the general inputs: reported, not bounded (a sign that rounding
  flips moves the logits; larq-zoo's own float32 run is shown beside it).

Exits 1 if a bound fails. Usage::

    python tools/model_converters/larq_zoo_compare.py DIR [--json OUT]
"""
import argparse
import json
import os.path as osp
import sys
from typing import Dict, Mapping, Optional, Sequence

import numpy as np
import torch

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(REPO, 'configs', 'birealnet', 'bireal18_larq-zoo_in1k.py')
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

from larq_zoo_to_mmbireal import convert_file  # noqa: E402


def build_converted(h5: str) -> torch.nn.Module:
    """The config's classifier with the converted weights (strict)."""
    from mmbireal.apis import build_model
    converted = convert_file(h5)
    filters, classes = (converted['meta'][k] for k in ('filters',
                                                       'num_classes'))
    model = build_model(
        CONFIG,
        cfg_options={
            'model.backbone.stem_channels': filters,
            'model.backbone.base_channels': filters,
            'model.head.in_channels': filters * 8,
            'model.head.num_classes': classes,
        })
    model.load_state_dict(converted['state_dict'])
    return model


def logits(model: torch.nn.Module, x_nhwc: np.ndarray,
           dtype: torch.dtype) -> np.ndarray:
    """The eval logits of ``model`` (in ``dtype``, on its device) for
    the NHWC inputs ``x_nhwc``, as a float64 array."""
    device = next(model.parameters()).device
    x = torch.from_numpy(x_nhwc).permute(0, 3, 1, 2).to(device, dtype)
    with torch.no_grad():
        return model.to(dtype)(x, mode='tensor').double().cpu().numpy()


def relative(a: np.ndarray, ref: np.ndarray) -> float:
    """max |a - ref| over the range of ``ref`` (per set of inputs)."""
    if ref.size == 0:
        return 0.0
    return float(np.abs(a - ref).max() / (ref.max() - ref.min()))


def off_inputs(a: np.ndarray, ref: np.ndarray, tol: float) -> int:
    """How many inputs' logits differ by more than ``tol`` of their own
    range (a sign flipped by rounding, in float32)."""
    span = ref.max(axis=1) - ref.min(axis=1)
    return int((np.abs(a - ref).max(axis=1) > tol * span).sum())


def compare(directory: str, model: Optional[torch.nn.Module] = None,
            tol: float = 1e-4) -> Dict[str, float]:
    """Our logits against larq-zoo's in DIR ``directory`` (``model``:
    the converted one, built from DIR's h5 file if None): the figures
    :func:`failures` and ``main`` read."""
    model = model or build_converted(
        osp.join(directory, 'birealnet_random.h5'))
    with np.load(osp.join(directory, 'birealnet_random_logits.npz')) as ref:
        return _figures(model, ref, tol)


def _figures(model: torch.nn.Module, ref: Mapping[str, np.ndarray],
             tol: float) -> Dict[str, float]:
    """:func:`compare`'s figures from the reference arrays ``ref``."""
    figures = {}
    for kind in ('general', 'clean'):
        x = ref[f'{kind}_inputs']
        tf64 = ref[f'{kind}_logits64']
        figures[f'{kind}_count'] = len(x)
        figures[f'{kind}_float64'] = relative(
            logits(model, x, torch.float64), tf64)
        ours32 = logits(model, x, torch.float32)
        figures[f'{kind}_float32'] = relative(ours32, tf64)
        figures[f'{kind}_larq_float32'] = relative(ref[f'{kind}_logits32'],
                                                   tf64)
        figures[f'{kind}_float32_off'] = off_inputs(ours32, tf64, tol)
        figures[f'{kind}_larq_float32_off'] = off_inputs(
            ref[f'{kind}_logits32'], tf64, tol)
        if len(x):
            figures[f'{kind}_min_presign'] = float(
                ref[f'{kind}_min_presign'].min())
            figures[f'{kind}_presign_err'] = float(
                ref[f'{kind}_presign_err'].max())
    return figures


def failures(figures: Dict[str, float], tol: float) -> Sequence[str]:
    bounded = ('general_float64', 'clean_float64', 'clean_float32')
    bad = [k for k in bounded if figures[k] > tol]
    if figures['clean_count'] == 0:
        bad.append('clean_count')
    return bad


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('dir')
    parser.add_argument('--tol', type=float, default=1e-4)
    parser.add_argument('--json', help='also write the figures here')
    args = parser.parse_args()
    figures = compare(args.dir, tol=args.tol)
    for key, value in figures.items():
        print(f'{key}: {value:.3g}')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(figures, f, indent=1)
    bad = failures(figures, args.tol)
    if bad:
        print(f'FAILED (> {args.tol:g} of the logit range, or no clean '
              f'input): {", ".join(bad)}')
        sys.exit(1)
    print(f'passed: float64 and clean float32 logits within {args.tol:g} '
          'of the logit range')


if __name__ == '__main__':
    main()
