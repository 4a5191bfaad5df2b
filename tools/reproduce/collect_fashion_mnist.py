"""Collect the Fashion-MNIST reproduction runs into logs, a table and a plot.

Reads mmengine's ``vis_data/scalars.json`` of every run in
``<work root>/<run>`` (all timestamps, so resumed runs are merged), writes a
small JSON log per run to ``docs/results/fashion_mnist/``, plots top-1 vs
epoch for every run to ``curves.png`` and rewrites the results table between
the markers in README.md. Runs that have not finished are listed as such.

Usage: python tools/reproduce/collect_fashion_mnist.py RUN [RUN ...]
"""
import argparse
import glob
import json
import os
import os.path as osp
import re
from typing import Dict, List, Optional

import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator
from mmengine.config import Config

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
OUT = osp.join(REPO, 'docs', 'results', 'fashion_mnist')
README = osp.join(REPO, 'README.md')
START, END = '<!-- fmnist-results:start -->', '<!-- fmnist-results:end -->'

# What each run shows, in the words of the paper's ablation.
DESCRIPTIONS = {
    'bireal18_relu-pre_1xb64_fmnist': 'real-valued, ReLU (step 1a)',
    'bireal18_leakyclip-pre_1xb64_fmnist':
    'real-valued, leaky-clip (step 1b, from 1a)',
    'bireal18_clip-pre_1xb64_fmnist': 'real-valued, clip (step 1c, from 1b)',
    'bireal18_1xb64_fmnist':
    'Bi-Real-18: ApproxSign + magnitude-aware, from clip pre-training',
    'bireal18_bn-retrain_1xb64_fmnist':
    'Bi-Real-18 after BN retrain (+-1 weights, step 3)',
    'bireal18_ste_1xb64_fmnist': 'Bi-Real-18 with STE instead of ApproxSign',
    'bireal18_scaled-sign_1xb64_fmnist':
    'Bi-Real-18 with scaled_sign instead of magnitude-aware gradient',
    'bireal18_from-relu_1xb64_fmnist':
    'Bi-Real-18 from ReLU pre-training instead of clip',
    'bireal18_scratch_1xb64_fmnist': 'Bi-Real-18 from scratch',
    'binary-resnet18_scratch_1xb64_fmnist':
    '1-bit ResNet-18 (one shortcut per two convs) from scratch',
}


def read_run(work_root: str, run: str) -> Optional[dict]:
    """Merge the scalar logs of every (resumed) session of ``run``."""
    files = sorted(
        glob.glob(osp.join(work_root, run, '*', 'vis_data',
                           'scalars.json')))
    if not files:
        return None
    top1: Dict[int, float] = {}
    loss: Dict[int, float] = {}
    for path in files:
        with open(path) as f:
            for line in f:
                record = json.loads(line)
                if 'accuracy/top1' in record:
                    top1[int(record['step'])] = round(
                        record['accuracy/top1'], 2)
                elif 'loss' in record:
                    loss[int(record['step'])] = round(record['loss'], 4)
    max_epochs = Config.fromfile(
        osp.join(REPO, 'configs', 'birealnet',
                 f'{run}.py')).train_cfg.max_epochs
    return dict(
        run=run,
        config=f'configs/birealnet/{run}.py',
        description=DESCRIPTIONS.get(run, run),
        max_epochs=max_epochs,
        finished=max(top1, default=0) >= max_epochs,
        seeds=1,
        test_images=10000,
        val_top1_by_epoch={str(k): v
                           for k, v in sorted(top1.items())},
        train_loss_by_iter={str(k): v
                            for k, v in sorted(loss.items())},
    )


def table(results: List[dict]) -> str:
    rows = [
        '| run | top-1 (%) | epochs | seeds | config |',
        '|---|---|---|---|---|',
    ]
    for r in results:
        epochs = r['val_top1_by_epoch']
        last = epochs[max(epochs, key=int)] if epochs else None
        state = f'{last:.2f}' if r['finished'] else (
            f'not finished ({last:.2f} after epoch {max(epochs, key=int)})'
            if epochs else 'not run yet')
        rows.append(f"| {r['description']} | {state} | {r['max_epochs']} | "
                    f"{r['seeds']} | [{r['run']}]({r['config']}) |")
    return '\n'.join(rows)


def plot(results: List[dict], path: str) -> None:
    fig, ax = plt.subplots(figsize=(8, 5))
    for r in results:
        epochs = sorted(int(e) for e in r['val_top1_by_epoch'])
        if not epochs:
            continue
        ax.plot(epochs, [r['val_top1_by_epoch'][str(e)] for e in epochs],
                marker='o', label=r['description'])
    ax.set_xlabel('epoch')
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel('top-1 (%) on the 10,000 test images')
    ax.set_title('Fashion-MNIST, first 12,000 training images, 2-core CPU')
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc='lower right')
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('runs', nargs='+', help='config names, in order')
    parser.add_argument('--work-root', default=osp.join(REPO, 'work_dirs'),
                        help='folder holding one work dir per run')
    args = parser.parse_args()
    os.makedirs(OUT, exist_ok=True)
    results = []
    for run in args.runs:
        result = read_run(args.work_root, run) or dict(
            run=run, config=f'configs/birealnet/{run}.py',
            description=DESCRIPTIONS.get(run, run), max_epochs='-',
            finished=False, seeds=1, val_top1_by_epoch={})
        if 'train_loss_by_iter' in result:
            with open(osp.join(OUT, f'{run}.json'), 'w') as f:
                json.dump(result, f, indent=1)
        results.append(result)
    text = table(results)
    print(text)
    plot(results, osp.join(OUT, 'curves.png'))
    with open(README) as f:
        readme = f.read()
    if START in readme and END in readme:
        readme = re.sub(
            f'{re.escape(START)}.*{re.escape(END)}',
            lambda _: f'{START}\n{text}\n{END}', readme, flags=re.S)
        with open(README, 'w') as f:
            f.write(readme)


if __name__ == '__main__':
    main()
