"""Collect the reproduction runs into logs, tables and a plot.

Reads mmengine's ``vis_data/scalars.json`` of every run in
``<work root>/seed<N>/<run>`` (all timestamps, so resumed runs are merged)
of ``tools/reproduce/run_study.sh`` and writes, under ``--out`` (default
``docs/results/fashion_mnist/``):

* ``seed<N>/<run>.json``: top-1 per epoch, flip ratios per epoch (binary
  runs), training loss, for every run that has logged anything;
* ``README.md``: the results (mean +- sample std over the finished seeds,
  each seed's figure), the binary runs' sign flips (epoch 1 and summed)
  and the paper's comparisons, each difference paired by seed with its
  standard error and whether a t-test at 5% finds it;
* ``curves.png``: top-1 and the flip ratio against the epoch, mean over
  the finished seeds with their range shaded (a run with none finished:
  its seeds' progress, dashed);
* the model zoo's figures: in ``--metafile`` (default: the repo's
  ``configs/birealnet/metafile.yml`` when ``--out`` is the default), every
  model named after a finished run gets ``Top 1 Accuracy`` (the mean),
  ``Top 1 Accuracy std`` (two seeds or more) and ``Seeds``; the repo's
  ``configs/birealnet/README.md`` table is then regenerated from it.

Runs that have not finished are listed as such and left out of the means.

Runs are named ``<model>_<role>_<batch>_<data>`` (configs/birealnet/); the
tables describe and compare them by ``<model>_<role>``, so the same code
serves the Fashion-MNIST and the ImageNet configs.

Usage: python tools/reproduce/collect_study.py [--seeds 0 1 2]
       [--work-root DIR] [--out DIR] -- RUN [RUN ...]
"""
import argparse
import functools
import glob
import importlib.util
import json
import math
import os
import os.path as osp
import re
import statistics
import sys
from types import ModuleType
from typing import Dict, List, Optional, Tuple

import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator
from mmengine.config import Config

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _repo_module(*path: str) -> ModuleType:
    """A module of the repo loaded by its path: the planner stays quick
    (importing ``mmbireal`` loads torch and MMPretrain)."""
    spec = importlib.util.spec_from_file_location(
        osp.splitext(path[-1])[0], osp.join(REPO, *path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# the rule tools/train.py resumes by, shared
resume_point = _repo_module('mmbireal', 'utils', 'resume.py').resume_point

OUT = osp.join(REPO, 'docs', 'results', 'fashion_mnist')
METAFILE = osp.join(REPO, 'configs', 'birealnet', 'metafile.yml')
# the single-seed results of the first reproduction (AMD EPYC VM, before
# the one-pass binarization kernels), kept for comparison
PREVIOUS = 'previous-seed0-epyc'
# the device in the summary line the tools log first (mmbireal.utils.console)
MACHINE = re.compile(r' - INFO - (?:CPU \((.+?); CUDA not available\)|'
                     r'CUDA \((.+?)\)), \d+ process')
# in the environment mmengine logs (torch.__config__.show())
CAPABILITY = re.compile(r'CPU capability usage: (\S+)')
# the summary line's mmbireal version names the checkout's commit
COMMIT = re.compile(r' - INFO - .*, mmbireal \S+ \(commit (\S+)\); seed ')

# What each run shows, in the words of the paper's ablation (by role).
DESCRIPTIONS = {
    'bireal18_relu-pre': 'real-valued, ReLU (step 1a)',
    'bireal18_leakyclip-pre':
    'real-valued, leaky-clip (step 1b, from 1a)',
    'bireal18_clip-pre': 'real-valued, clip (step 1c, from 1b)',
    'bireal18':
    'Bi-Real-18: ApproxSign + magnitude-aware, from clip pre-training',
    'bireal18_bn-retrain':
    'Bi-Real-18 after BN retrain (+-1 weights, step 3)',
    'bireal18_ste': 'Bi-Real-18 with STE instead of ApproxSign',
    'bireal18_scaled-sign':
    'Bi-Real-18 with scaled_sign instead of magnitude-aware gradient',
    'bireal18_from-relu':
    'Bi-Real-18 from ReLU pre-training instead of clip',
    'bireal18_scratch': 'Bi-Real-18 from scratch',
    'binary-resnet18_scratch':
    '1-bit ResNet-18 (one shortcut per two convs) from scratch',
    # the paper's shortcut ablation like for like: the 1-bit ResNet with
    # the whole procedure, its own pre-training chain included
    'binary-resnet18_relu-pre': '1-bit ResNet-18 topology, real-valued, ReLU '
    '(step 1a)',
    'binary-resnet18_leakyclip-pre':
    '1-bit ResNet-18 topology, real-valued, leaky-clip (step 1b)',
    'binary-resnet18_clip-pre':
    '1-bit ResNet-18 topology, real-valued, clip (step 1c)',
    'binary-resnet18': '1-bit ResNet-18 from its clip pre-training',
    'bireal18_long': 'Bi-Real-18, magnitude-aware, 4x the epochs',
    'bireal18_scaled-sign-long': 'Bi-Real-18, scaled_sign, 4x the epochs',
    'bireal18_lr-alpha':
    'Bi-Real-18, magnitude-aware, binary weights at lr x 1/mean(alpha)',
    # ReActNet-style training on the same backbone (#14): step 1 binary
    # activations and real weights from scratch, step 2 binary weights too
    'bireal18-rsign-rprelu_step1':
    '+ RSign/RPReLU, step 1 (binary activations, real weights)',
    'bireal18-rsign-rprelu_step2':
    '+ RSign/RPReLU, step 2 (binary weights too)',
    'bireal18-distill_step1':
    '+ distillation from the clip network, step 1',
    'bireal18-distill_step2':
    '+ distillation from the clip network, step 2',
    'bireal18-react_step1':
    'ReActNet-style (RSign/RPReLU + distillation), step 1',
    'bireal18-react_step2':
    'ReActNet-style (RSign/RPReLU + distillation), step 2',
}

# (role A, role B, what A - B tests, the paper's finding on ImageNet from
# its ablation study, approximate; '-' where it gives none)
COMPARISONS = [
    ('bireal18', 'bireal18_from-relu',
     'clip vs ReLU pre-training', 'clip better by several points'),
    ('bireal18', 'bireal18_scratch',
     'pre-training vs binary training from scratch',
     'no figure (the full method pre-trains)'),
    ('bireal18', 'bireal18_ste',
     'ApproxSign vs STE', 'ApproxSign better by several points'),
    ('bireal18', 'bireal18_scaled-sign',
     'magnitude-aware vs scaled_sign weight gradient',
     'no figure (the full method uses magnitude-aware)'),
    ('bireal18', 'binary-resnet18',
     'per-conv shortcut vs 1-bit ResNet, both with the whole procedure',
     '56.4 vs about 45.7'),
    ('bireal18_scratch', 'binary-resnet18_scratch',
     'per-conv shortcut vs 1-bit ResNet, both from scratch', '-'),
    ('bireal18_bn-retrain', 'bireal18',
     'BN retrain (+-1 weights) vs before it',
     '56.4 is reported after it; no figure before'),
    ('bireal18_long', 'bireal18_scaled-sign-long',
     'magnitude-aware vs scaled_sign, 4x the epochs', '-'),
    ('bireal18_long', 'bireal18',
     'magnitude-aware: 4x the epochs vs 4 epochs', '-'),
    ('bireal18_scaled-sign-long', 'bireal18_scaled-sign',
     'scaled_sign: 4x the epochs vs 4 epochs', '-'),
    ('bireal18_long', 'bireal18_lr-alpha',
     'magnitude-aware: 4x the epochs at lr vs 4 epochs at lr / mean(alpha)',
     '-'),
    ('bireal18_lr-alpha', 'bireal18_scaled-sign',
     'magnitude-aware at lr / mean(alpha) vs scaled_sign', '-'),
    ('bireal18_lr-alpha', 'bireal18',
     'magnitude-aware at lr / mean(alpha) vs at lr', '-'),
    ('bireal18-rsign-rprelu_step2', 'bireal18',
     "RSign/RPReLU two-step training vs the paper's procedure", '-'),
    ('bireal18-distill_step2', 'bireal18',
     "distilled two-step training vs the paper's procedure", '-'),
    ('bireal18-react_step2', 'bireal18-rsign-rprelu_step2',
     'ReActNet-style recipe vs RSign/RPReLU alone (what distillation adds)',
     '-'),
    ('bireal18-react_step2', 'bireal18-distill_step2',
     'ReActNet-style recipe vs distillation alone (what RSign/RPReLU adds)',
     '-'),
    ('bireal18-react_step2', 'bireal18',
     "ReActNet-style recipe vs the paper's procedure",
     "65.9 vs 56.4 (the ReActNet authors' README, their Bi-Real-based "
     'network; 56.4 is the Bi-Real paper\'s)'),
]


# the data a run's name ends with -> how its results are described
DATASETS = {
    'fmnist': 'Fashion-MNIST, first 12,000 training images, top-1 on the '
    '10,000 test images',
    'in1k': 'ImageNet-1k, top-1 on the 50,000 validation images',
}


def role(run: str) -> str:
    """``bireal18_ste_1xb64_fmnist`` -> ``bireal18_ste``."""
    return run.rsplit('_', 2)[0]


def describe(run: str) -> str:
    return DESCRIPTIONS.get(role(run), run)


def started_afresh(session_dir: str) -> bool:
    """Whether a session's log shows a start from scratch (mmengine logs
    'resumed epoch' when it resumes; a session without a log counts as
    resumed, so that its scalars are merged as before)."""
    logs = glob.glob(osp.join(session_dir, '*.log'))
    if not logs:
        return False
    with open(logs[0], errors='replace') as f:
        return not any('resumed epoch: ' in line for line in f)


def current_sessions(run_dir: str) -> List[str]:
    """The run's session folders since its last start from scratch that
    logged scalars (a run trained again from the start in the same folder
    does not inherit the earlier try's scores or machines)."""
    sessions = sorted(
        osp.dirname(osp.dirname(path)) for path in glob.glob(
            osp.join(run_dir, '*', 'vis_data', 'scalars.json'))
        if os.path.getsize(path))
    starts = [i for i, s in enumerate(sessions) if started_afresh(s)]
    return sessions[starts[-1]:] if starts else sessions


def read_scalars(run_dir: str) -> Dict[str, Dict[int, float]]:
    """``key -> {step: value}`` of the run's :func:`current_sessions`."""
    series: Dict[str, Dict[int, float]] = {}
    for session in current_sessions(run_dir):
        path = osp.join(session, 'vis_data', 'scalars.json')
        with open(path) as f:
            for number, line in enumerate(f, 1):
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:  # e.g. cut short by a full disk
                    print(f'warning: {path}:{number} is not JSON; skipped',
                          file=sys.stderr)
                    continue
                step = int(record.pop('step'))
                for key, value in record.items():
                    if key == 'accuracy/top1' or key == 'loss' or \
                            key.startswith('flip_ratio/'):
                        series.setdefault(key, {})[step] = value
    return series


def session_logs(run_dir: str) -> List[str]:
    """The log file of each session of the run, oldest first."""
    return sorted(log for session in current_sessions(run_dir)
                  for log in glob.glob(osp.join(session, '*.log')))


def read_machines(run_dir: str) -> List[str]:
    """The CPU or GPU each session of the run trained on, from the
    summary line of its log (float results differ between CPU models, so
    a retraining elsewhere need not repeat a run bit for bit). A CPU's
    name is followed by the SIMD level PyTorch's kernels used, from the
    environment the log lists (one model name covers CPUs with and without
    AVX-512, whose results differ)."""
    machines: List[str] = []
    for path in session_logs(run_dir):
        name = capability = None
        with open(path, errors='replace') as f:
            for line in f:
                found = MACHINE.search(line)
                if found and name is None:
                    name = found.group(1) or found.group(2)
                    on_cpu = found.group(1) is not None
                found = CAPABILITY.search(line)
                if found and capability is None:
                    capability = found.group(1)
                if name is not None and capability is not None:
                    break
        if name is None:
            continue
        if on_cpu and capability:
            name = f'{name} [{capability}]'
        if name not in machines:
            machines.append(name)
    return machines


def read_commits(run_dir: str) -> List[str]:
    """The mmbireal commit each session of the run trained with, from the
    summary line of its log (none for a run of an installed wheel or
    logged before the summary named the commit)."""
    commits: List[str] = []
    for path in session_logs(run_dir):
        with open(path, errors='replace') as f:
            found = next(filter(None, map(COMMIT.search, f)), None)
        if found and found.group(1) not in commits:
            commits.append(found.group(1))
    return commits


@functools.lru_cache(maxsize=None)
def run_config(run: str) -> Config:
    """The run's config (parsed once: the tables ask for it many times)."""
    return Config.fromfile(osp.join(REPO, 'configs', 'birealnet',
                                    f'{run}.py'))


def max_epochs(run: str) -> int:
    return run_config(run).train_cfg.max_epochs


def read_committed(out: str, run: str, seed: int) -> Optional[dict]:
    """The run's log as committed by an earlier session, if any."""
    path = osp.join(out, f'seed{seed}', f'{run}.json')
    if not osp.isfile(path):
        return None
    with open(path) as f:
        committed = json.load(f)
    # finished by the epochs it logged, not by its flag: a hand-edited or
    # truncated log, or a config given more epochs since, is not finished
    logged = [int(k) for k in committed.get('val_top1_by_epoch', {})]
    committed['finished'] = max(logged, default=0) >= max_epochs(run)
    return committed


def parents(run: str, resuming: bool = False) -> List[str]:
    """The runs whose checkpoints the config reads (``work_dirs/<run>/...``
    in ``load_from`` or in a distilling model's ``teacher_ckpt``). A run
    that resumes from its own checkpoint no longer reads its ``load_from``,
    except the lr-alpha run (run_study.sh reads its 1 / mean(alpha) from
    it at every start)."""
    cfg = run_config(run)
    found = []
    load_from = cfg.get('load_from')
    if resuming and '_lr-alpha_' not in run:
        load_from = None
    for path in (load_from, cfg.model.get('teacher_ckpt')):
        parts = (path or '').split('/')
        if len(parts) > 2 and parts[0] == 'work_dirs':
            found.append(parts[1])
    return found


def runs_to_train(runs: List[str], wanted: List[str], seed: int,
                  work_root: str, out: str) -> List[str]:
    """The runs a seed still trains for ``wanted``, in the order of
    ``runs`` (every run listed after the run it starts from).

    A wanted run is needed when no finished log of it is committed and
    ``work_root`` does not hold it with its last epoch's score; any run is
    needed when a needed run starts from its checkpoint and that
    checkpoint is not in ``work_root`` (sessions keep only the logs; the
    training is deterministic, so retraining gives the same checkpoint).
    """
    def ckpt(run: str) -> str:
        return osp.join(work_root, f'seed{seed}', run,
                        f'epoch_{max_epochs(run)}.pth')

    def validated(run: str) -> bool:
        # the last checkpoint is written before the last validation: a run
        # stopped during it has the checkpoint and no final score yet
        return osp.isfile(ckpt(run)) and scored_to_the_end(
            read_scalars(osp.join(work_root, f'seed{seed}', run)), run)

    def finished(run: str) -> bool:
        committed = read_committed(out, run, seed)
        return validated(run) or bool(committed and committed.get('finished'))

    def resuming(run: str) -> bool:
        return bool(resume_point(osp.join(work_root, f'seed{seed}', run)))

    needed = {run for run in wanted if not finished(run)}
    for run in reversed(runs):  # parents come before their children
        if run in needed:
            needed.update(parent for parent in parents(run, resuming(run))
                          if not osp.isfile(ckpt(parent)))
    unplanned = needed - set(runs)
    if unplanned:
        raise SystemExit(f'error: {sorted(unplanned)} not in the list of '
                         f'runs {runs}')
    return [run for run in runs if run in needed and not validated(run)]


def scored_to_the_end(series: Dict[str, Dict[int, float]],
                      run: str) -> bool:
    """Whether a log (:func:`read_scalars`) has the last epoch's score."""
    return max(series.get('accuracy/top1', {}), default=0) >= max_epochs(run)


def by_step(series: Dict[str, Dict[int, float]], key: str,
            digits: int) -> Dict[str, float]:
    """One key of :func:`read_scalars` as the JSON logs keep it."""
    return {
        str(k): round(v, digits)
        for k, v in sorted(series.get(key, {}).items())
    }


def started_from(work_root: str, run: str, seed: int,
                 out: str) -> Dict[str, Dict[str, float]]:
    """The top-1 per epoch of each run whose checkpoint ``run`` loaded:
    the one trained in ``work_root`` (its checkpoint is the one there),
    else the committed one. It names the network the run started from: a
    parent retrained on another CPU is another network (#15)."""
    found = {}
    for parent in parents(run):
        series = read_scalars(osp.join(work_root, f'seed{seed}', parent))
        if scored_to_the_end(series, parent):
            found[parent] = by_step(series, 'accuracy/top1', 2)
            continue
        committed = read_committed(out, parent, seed)
        if committed:
            found[parent] = committed['val_top1_by_epoch']
    return found


def read_run(work_root: str, run: str, seed: int,
             committed: Optional[dict] = None,
             out: str = OUT) -> Optional[dict]:
    """The run's log from its work dir; the committed one when the work
    dir has none, or is a retraining (for its checkpoint) not finished
    yet."""
    series = read_scalars(osp.join(work_root, f'seed{seed}', run))
    if committed and committed.get('finished') and not scored_to_the_end(
            series, run):
        return committed
    if not series:
        return committed
    top1 = series.get('accuracy/top1', {})
    epochs = max_epochs(run)
    start = started_from(work_root, run, seed, out)
    if committed and committed.get('started_from') and \
            committed['val_top1_by_epoch'] == by_step(series,
                                                       'accuracy/top1', 2):
        # the same run: what it started from was recorded when it trained
        # (its parent's work dir may hold a later retraining by now)
        start = committed['started_from']
    return dict(
        run=run,
        seed=seed,
        config=f'configs/birealnet/{run}.py',
        description=describe(run),
        max_epochs=epochs,
        finished=max(top1, default=0) >= epochs,
        val_top1_by_epoch=by_step(series, 'accuracy/top1', 2),
        flip_ratio_by_epoch={
            key.split('/', 1)[1]: by_step(series, key, 6)
            for key in sorted(series) if key.startswith('flip_ratio/')
        },
        train_loss_by_iter=by_step(series, 'loss', 4),
        machines=read_machines(osp.join(work_root, f'seed{seed}', run)),
        commits=read_commits(osp.join(work_root, f'seed{seed}', run)),
        started_from=start,
    )


def lineage(results: Dict[str, Dict[int, dict]], run: str,
            seed: int) -> Dict[str, Dict[str, float]]:
    """Every run of the seed's chain that ``run`` descends from, with the
    top-1 per epoch of the network it descends from. A log committed before
    runs recorded this started from the seed's runs in ``results``; past a
    parent that differs from the one in ``results`` the chain is unknown,
    and not needed: that parent already tells two descendants apart."""
    found: Dict[str, Dict[str, float]] = {}
    recorded = results[run][seed].get('started_from') or {}
    for parent in parents(run):
        table = results.get(parent, {}).get(seed)
        start = recorded.get(parent) or (
            table and table['val_top1_by_epoch'])
        if not start:
            continue
        found[parent] = start
        if table and table['val_top1_by_epoch'] == start:
            found.update({k: v for k, v in lineage(results, parent,
                                                   seed).items()
                          if k not in found})
    return found


def same_start(results: Dict[str, Dict[int, dict]], a: str, b: str,
               seed: int) -> bool:
    """Whether two runs of a seed descend from the same networks (each
    run counts as its own network, for a run that starts from the other):
    only then is their difference the one the comparison is about."""
    own = {r: {r: results[r][seed]['val_top1_by_epoch']} for r in (a, b)}
    ancestors_a = {**lineage(results, a, seed), **own[a]}
    ancestors_b = {**lineage(results, b, seed), **own[b]}
    return all(ancestors_a[r] == ancestors_b[r]
               for r in ancestors_a.keys() & ancestors_b.keys())


def chain_note(results: Dict[str, Dict[int, dict]]) -> str:
    """The runs that started from a network other than the seed's run in
    the tables (a retraining that came out differently, e.g. on another
    CPU), which the comparisons pair only with runs of the same start."""
    notes = []
    for run, by_seed in results.items():
        for seed, result in sorted(by_seed.items()):
            for parent, start in (result.get('started_from') or {}).items():
                table = results.get(parent, {}).get(seed)
                if table and table['val_top1_by_epoch'] != start:
                    notes.append(
                        f'seed {seed} {role(run)} started from a retraining '
                        f'of {role(parent)} ({start[max(start, key=int)]:.2f}'
                        f' against {final_top1(table):.2f} in the tables)')
    if not notes:
        return ''
    return ('Started from another network than the tables list: ' +
            '; '.join(notes) + '. The comparisons pair these runs only '
            'with runs that started from the same networks.')


def provenance_note(results: Dict[str, Dict[int, dict]]) -> str:
    """Per seed, the machines its runs trained on and the mmbireal commits
    they trained with, each with how many runs."""
    def per_seed(key: str) -> str:
        counts: Dict[int, Dict[str, int]] = {}
        for by_seed in results.values():
            for seed, result in by_seed.items():
                for name in result.get(key) or ['not recorded']:
                    seen = counts.setdefault(seed, {})
                    seen[name] = seen.get(name, 0) + 1
        return '; '.join(
            f'seed {seed}: ' + ', '.join(
                f'{name} ({n} run{"s" if n > 1 else ""})'
                for name, n in counts[seed].items())
            for seed in sorted(counts))

    return (f"Trained on (from each run's log): {per_seed('machines')}. "
            f'With mmbireal at commit: {per_seed("commits")}.')


def final_top1(result: dict) -> float:
    epochs = result['val_top1_by_epoch']
    return epochs[max(epochs, key=int)]


def mean_std(values: List[float]) -> str:
    if not values:
        return '-'
    if len(values) == 1:
        return f'{values[0]:.2f}'
    return f'{statistics.mean(values):.2f} +- {statistics.stdev(values):.2f}'


OUR_METRICS = re.compile(r'          (Top 1 Accuracy|Top 1 Accuracy std|'
                         r'Seeds):')


def _merge_metrics(metrics: List[str], found: re.Match) -> str:
    """A ``Metrics:`` block with ``metrics`` in place of ours; others'
    (e.g. ``Top 1 Accuracy (paper)``) stay."""
    kept = [line for line in found.group(0).splitlines()[1:]
            if not OUR_METRICS.match(line)]
    return '        Metrics:\n' + ''.join(
        f'{line}\n' for line in [f'          {m}' for m in metrics] + kept)


def update_metafile(path: str,
                    results: Dict[str, Dict[int, dict]]) -> List[str]:
    """Write the measured top-1 of the finished runs into the Metrics of
    the metafile's models of the same names (the file's comments and
    layout kept); returns the runs written."""
    with open(path) as f:
        text = f.read()
    written = []
    for run, by_seed in results.items():
        finals = [final_top1(r) for r in by_seed.values() if r['finished']]
        entry = re.search(rf'^  - Name: {re.escape(run)}\n(?:    .*\n?)*',
                          text, re.M)
        if not finals or entry is None:
            continue
        metrics = [f'Top 1 Accuracy: {statistics.mean(finals):.2f}']
        if len(finals) > 1:
            metrics.append(
                f'Top 1 Accuracy std: {statistics.stdev(finals):.2f}')
        metrics.append(f'Seeds: {len(finals)}')
        updated, found = re.subn(r'^        Metrics:\n(?:          .*\n?)*',
                                 functools.partial(_merge_metrics, metrics),
                                 entry.group(0), count=1, flags=re.M)
        if found:
            text = text.replace(entry.group(0), updated)
            written.append(run)
    with open(path, 'w') as f:
        f.write(text)
    return written


def update_model_zoo_readme() -> None:
    """configs/birealnet/README.md's table, from the repo's metafile."""
    _repo_module('tools', 'model_zoo', 'update_readme.py').update()


def results_table(runs: List[str], results: Dict[str, Dict[int, dict]],
                  seeds: List[int], previous: Dict[str, float]) -> str:
    rows = [
        '| run | top-1 (%), mean +- std | n | ' +
        ' | '.join(f'seed {s}' for s in seeds) +
        ' | earlier seed 0 (old data loader and kernels) | epochs | config |',
        '|---|---|---|' + '---|' * len(seeds) + '---|---|---|',
    ]
    for run in runs:
        cells = []
        done = []
        for seed in seeds:
            r = results[run].get(seed)
            if r is None:
                cells.append('not run yet')
            elif r['finished']:
                done.append(final_top1(r))
                cells.append(f'{final_top1(r):.2f}')
            elif r['val_top1_by_epoch']:
                last = max(r['val_top1_by_epoch'], key=int)
                cells.append(f'unfinished ({final_top1(r):.2f} after '
                             f'epoch {last})')
            else:
                cells.append('unfinished')
        before = previous.get(role(run))
        before = '-' if before is None else f'{before:.2f}'
        rows.append(f'| {describe(run)} | {mean_std(done)} | '
                    f'{len(done)} | ' + ' | '.join(cells) +
                    f' | {before} | {max_epochs(run)} | '
                    f'[{run}](../../../configs/birealnet/{run}.py) |')
    return '\n'.join(rows)


# t(0.975, df) for df = 1..30; beyond 30 the df-30 value, a little above
# the true one (2.042 against 1.96 at infinite df), so never too lenient
T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262,
        2.228, 2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101,
        2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052,
        2.048, 2.045, 2.042)


def comparison_table(results: Dict[str, Dict[int, dict]]) -> str:
    """A - B paired by seed (each seed's runs share its pre-training
    chain): the mean of the per-seed differences over the seeds both
    finished, its standard error ``sd(d) / sqrt(n)``, and 'yes' when it is
    more than ``t(0.975, n - 1)`` standard errors from 0 (a two-sided 5%
    paired t-test; needs 2+ seeds both ran). A seed whose two runs started
    from different networks (:func:`same_start`) is left out, and said."""
    names = {role(run): run for run in results}
    by_run = results
    results = {role(run): per_seed for run, per_seed in results.items()}
    rows = [
        '| comparison | paper (ImageNet) | here: A vs B (mean top-1, n) | '
        'A - B, paired +- SE (n) | beyond t(0.975, n-1) SE? |',
        '|---|---|---|---|---|'
    ]

    def finals(r: str) -> Dict[int, float]:
        return {s: final_top1(x) for s, x in results[r].items()
                if x['finished']}

    for a, b, what, paper in COMPARISONS:
        if a not in results or b not in results:
            continue
        fa, fb = finals(a), finals(b)
        if not fa or not fb:
            state = ('not finished yet' if results[a] and results[b] else
                     'not run yet')
            rows.append(f'| {what} | {paper} | {state} | - | - |')
            continue
        here = (f'{statistics.mean(fa.values()):.2f} vs '
                f'{statistics.mean(fb.values()):.2f} '
                f'(n = {len(fa)}, {len(fb)})')
        both = sorted(fa.keys() & fb.keys())
        shared = [s for s in both
                  if same_start(by_run, names[a], names[b], s)]
        apart = [s for s in both if s not in shared]
        # seeds left out: their runs started from different networks
        left_out = (f'; seed{"s" * (len(apart) > 1)} '
                    f'{", ".join(map(str, apart))} left out: different '
                    'starting networks' if apart else '')
        d = [fa[s] - fb[s] for s in shared]
        if shared and (len(shared) == 1 or len(shared) < len(fa) or
                       len(shared) < len(fb)):
            # the means the paired difference is of, not over other seeds
            here = (f'{statistics.mean(fa[s] for s in shared):.2f} vs '
                    f'{statistics.mean(fb[s] for s in shared):.2f} '
                    f'(seed{"s" * (len(shared) > 1)} '
                    f'{", ".join(map(str, shared))})')
        if len(d) < 2:  # the one seed both ran, else no difference
            if d:
                diff = f'{d[0]:+.2f} (seed {shared[0]} only{left_out})'
            elif apart:
                diff = f'- (no seed paired{left_out})'
            else:
                gap = (statistics.mean(fa.values()) -
                       statistics.mean(fb.values()))
                diff = f'{gap:+.2f} (unpaired: no seed both ran)'
            rows.append(f'| {what} | {paper} | {here} | {diff} | '
                        'needs 2+ seeds both ran |')
            continue
        mean, se = statistics.mean(d), statistics.stdev(d) / math.sqrt(len(d))
        t = T975[min(len(d) - 1, len(T975)) - 1]
        verdict = 'yes' if abs(mean) > t * se else 'no'
        rows.append(f'| {what} | {paper} | {here} | {mean:+.2f} +- '
                    f'{se:.2f} ({len(d)}{left_out}) | {verdict} |')
    return '\n'.join(rows)


# Binary networks against the paper's procedure and its real-valued
# network: how much of the gap between the two each recipe closes (#14).
GAP_BINARY, GAP_REAL = 'bireal18', 'bireal18_clip-pre'
GAP_ROWS = [('bireal18', "the paper's procedure (Bi-Real-18)"),
            ('bireal18-rsign-rprelu_step2', '+ RSign/RPReLU, two steps'),
            ('bireal18-distill_step2', '+ distillation, two steps'),
            ('bireal18-react_step2',
             'both: the ReActNet-style recipe, two steps')]


def gap_table(results: Dict[str, Dict[int, dict]]) -> str:
    """Each binary recipe's top-1 and the share of the gap between the
    paper's binary network and its real-valued one that it closes, from
    the means over the seeds where the recipe and both ends finished from
    the same starting networks (:func:`same_start`; empty without both
    ends)."""
    names = {role(run): run for run in results}
    by_run = results
    results = {role(run): per_seed for run, per_seed in results.items()}

    def finished(r: str) -> Dict[int, float]:
        return {s: final_top1(x) for s, x in results.get(r, {}).items()
                if x['finished']}

    low, high = finished(GAP_BINARY), finished(GAP_REAL)
    if not low or not high or not any(finished(r) for r, _ in GAP_ROWS[1:]):
        return ''
    rows = ['| recipe | top-1 (%), mean +- std | n | share of the gap '
            'closed |', '|---|---|---|---|']
    ceiling = (GAP_REAL, 'real-valued network (clip pre-training), the '
               'ceiling')
    every = sorted(low.keys() & high.keys())
    for r, what in [*GAP_ROWS, ceiling]:
        values = finished(r)
        if not values:
            rows.append(f'| {what} | not run yet | 0 | - |')
            continue
        seeds = sorted(
            s for s in values.keys() & low.keys() & high.keys()
            if all(same_start(by_run, names[r], names[end], s)
                   for end in (GAP_BINARY, GAP_REAL)))
        closed = '-'
        if seeds:
            top, bottom, here = (statistics.mean(x[s] for s in seeds)
                                 for x in (high, low, values))
            if top > bottom:  # else no gap to close
                closed = f'{100 * (here - bottom) / (top - bottom):.0f}%'
                if seeds != every:
                    closed += (f' (seed{"s" * (len(seeds) > 1)} '
                               f'{", ".join(map(str, seeds))})')
        rows.append(f'| {what} | {mean_std(list(values.values()))} | '
                    f'{len(values)} | {closed} |')
    return '\n'.join(rows)


def flip_table(runs: List[str], results: Dict[str, Dict[int, dict]]) -> str:
    """Per binary run, the share of binary weights that changed sign
    (``FlipRatioHook``, all stages): in epoch 1 and summed over its
    epochs, the range over the finished seeds (empty without any)."""
    rows = ['| run | n | epoch 1 (%) | summed over the epochs (%) | '
            'epochs |', '|---|---|---|---|---|']

    def spread(values: List[float]) -> str:
        low, high = (f'{100 * v:.3f}' for v in (min(values), max(values)))
        return low if low == high else f'{low}-{high}'

    for run in runs:
        flips = [r['flip_ratio_by_epoch']['all']
                 for r in results[run].values()
                 if r['finished'] and
                 '1' in r['flip_ratio_by_epoch'].get('all', {})]
        if not flips:
            continue
        rows.append(f'| {describe(run)} | {len(flips)} | '
                    f'{spread([f["1"] for f in flips])} | '
                    f'{spread([sum(f.values()) for f in flips])} | '
                    f'{max_epochs(run)} |')
    return '\n'.join(rows) if len(rows) > 2 else ''


def seeds_to_plot(by_seed: Dict[int, dict]) -> Tuple[List[dict], bool]:
    """A run's seeds its curve averages, and whether they finished: the
    finished ones, as in the tables (a mean over whichever seeds reached an
    epoch would change its n along the curve); with none finished, the
    progress of those that logged."""
    logged = [r for r in by_seed.values() if r['val_top1_by_epoch']]
    finished = [r for r in logged if r.get('finished')]
    return (finished, True) if finished else (logged, False)


def plot(runs: List[str], results: Dict[str, Dict[int, dict]], path: str,
         title: str) -> None:
    fig, (ax, ax_flip) = plt.subplots(1, 2, figsize=(13, 7))
    palette = plt.get_cmap('tab10').colors
    for index, run in enumerate(runs):
        per_seed, finished = seeds_to_plot(results[run])
        if not per_seed:
            continue
        # a run keeps its colour and marker in both panels and across
        # collections (by its place in the list; 10 colours, then markers)
        style = dict(color=palette[index % 10], marker='os^D'[index // 10 % 4])
        label = describe(run)
        if not finished:
            style.update(ls='--', fillstyle='none')
            label = f'{label} (unfinished)'
        for axis, get in ((ax, lambda r: r['val_top1_by_epoch']),
                          (ax_flip,
                           lambda r: r['flip_ratio_by_epoch'].get('all', {}))):
            curves = [get(r) for r in per_seed]
            epochs = sorted({int(e) for c in curves for e in c})
            if not epochs:
                continue
            values = [[c[str(e)] for c in curves if str(e) in c]
                      for e in epochs]
            bands = [[statistics.mean(v), min(v), max(v)] for v in values]
            if axis is ax_flip:  # the log axis cannot show an epoch
                # without flips (e.g. at the end of a decay to lr 0)
                bands = [[x if x > 0 else float('nan') for x in band]
                         for band in bands]
            means, lows, highs = zip(*bands)
            axis.plot(epochs, means, label=label, **style)
            if len(curves) > 1:
                axis.fill_between(epochs, lows, highs, color=style['color'],
                                  alpha=0.15)
    ax.set_ylabel('top-1 (%)')
    ax.set_title(title, fontsize=9)
    # legends under the panels: the 16-epoch runs span the whole x axis
    below = dict(fontsize=6, loc='upper center', bbox_to_anchor=(0.5, -0.1),
                 ncol=2)
    ax.legend(**below)
    ax_flip.set_ylabel('binary weights that changed sign in the epoch')
    ax_flip.set_yscale('log')
    ax_flip.set_title('flip ratio (FlipRatioHook, all stages; an epoch '
                      'without flips is not drawn)', fontsize=9)
    if ax_flip.lines:
        ax_flip.legend(**below)
    for axis in (ax, ax_flip):
        axis.set_xlabel('epoch (mean over seeds, range shaded)')
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def read_previous(out: str) -> Dict[str, float]:
    previous = {}
    for path in glob.glob(osp.join(out, PREVIOUS, '*.json')):
        with open(path) as f:
            r = json.load(f)
        if r.get('finished'):
            previous[role(r['run'])] = final_top1(r)
    return previous


def gather(runs: List[str], seeds: List[int], work_root: str,
           out: str) -> Dict[str, Dict[int, dict]]:
    """``run -> {seed: log}`` of every run that logged anything, each
    written to ``out/seed<N>/<run>.json``; a retrained run that differs
    from its committed log keeps the committed one (a warning)."""
    results: Dict[str, Dict[int, dict]] = {}
    for run in runs:
        results[run] = {}
        for seed in seeds:
            committed = read_committed(out, run, seed)
            result = read_run(work_root, run, seed, committed, out)
            if result is None:
                continue
            if (committed and committed.get('finished')
                    and result is not committed
                    and committed['val_top1_by_epoch'] !=
                    result['val_top1_by_epoch']):
                # the committed run is the one the committed later runs
                # started from; runs trained since started from the
                # retrained one (e.g. on another CPU): their logs record
                # it, and the comparisons pair them only with each other
                print(f'warning: seed {seed} {run} retrained differs from '
                      'its committed log, which is kept: '
                      f'{committed["val_top1_by_epoch"]} -> '
                      f'{result["val_top1_by_epoch"]}; runs trained from '
                      'the retrained checkpoint start from another network '
                      'than the committed ones of this seed (their '
                      "'started_from' says which)", file=sys.stderr)
                result = committed
            results[run][seed] = result
            os.makedirs(osp.join(out, f'seed{seed}'), exist_ok=True)
            with open(osp.join(out, f'seed{seed}', f'{run}.json'), 'w') as f:
                json.dump(result, f, indent=1)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('runs', nargs='+', help='config names, in order')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--work-root', default=osp.join(REPO, 'work_dirs'),
                        help='folder holding seed<N>/<run> work dirs')
    parser.add_argument('--out', default=OUT, help='where to write')
    parser.add_argument('--metafile', default=None,
                        help="metafile whose models named after the runs get "
                        "their measured top-1 (default: the repo's when "
                        "--out is the default; '' for none)")
    parser.add_argument('--todo', type=int, metavar='SEED',
                        help='only print the runs this seed still trains')
    parser.add_argument('--want', default='', metavar='"RUN ..."',
                        help='with --todo: the runs wanted (default: all)')
    parser.add_argument('--resume-point', metavar='WORK_DIR',
                        help='only print the checkpoint this run resumes '
                        "from ('' for none)")
    args = parser.parse_args()
    out = args.out
    if args.resume_point is not None:
        print(resume_point(args.resume_point) or '')
        return
    if args.todo is not None:
        wanted = args.want.split() or args.runs
        print(' '.join(runs_to_train(args.runs, wanted, args.todo,
                                     args.work_root, out)))
        return
    results = gather(args.runs, args.seeds, args.work_root, out)
    table = results_table(args.runs, results, args.seeds, read_previous(out))
    comparisons = comparison_table(results)
    gaps = gap_table(results)
    machines = provenance_note(results)
    chains = chain_note(results)
    flips = flip_table(args.runs, results)
    print(*(part for part in (table, machines, chains, flips, comparisons,
                              gaps) if part), sep='\n\n')
    metafile = args.metafile
    if metafile is None:
        metafile = METAFILE if osp.abspath(out) == OUT else ''
    if metafile:
        written = update_metafile(metafile, results)
        print(f'{metafile}: top-1 of {", ".join(written) or "no run"}')
        if osp.abspath(metafile) == METAFILE:
            update_model_zoo_readme()
    data = DATASETS.get(args.runs[0].rsplit('_', 1)[-1], 'top-1')
    plot(args.runs, results, osp.join(out, 'curves.png'), data)
    with open(osp.join(out, 'README.md'), 'w') as f:
        f.write(
            '# Reproduction: results\n\n'
            f'{data}, after the last epoch of each run. Written by '
            '`tools/reproduce/collect_study.py` from the runs of '
            '`tools/reproduce/run_study.sh`. Mean +- '
            'sample standard deviation over the finished seeds (n); each '
            "seed's binary runs start from that seed's own pre-training "
            'chain. Logs: `seed<N>/<run>.json`.\n\n'
            f'{table}\n\n{machines}\n\n' +
            (f'{chains}\n\n' if chains else '') +
            '![top-1 and flip ratio vs epoch](curves.png)\n\n' + (
                '## Sign flips\n\nThe share of binary weights whose sign '
                'changed (`FlipRatioHook`, all stages), range over the '
                f'finished seeds.\n\n{flips}\n\n' if flips else '') +
            '## Against the paper\n\nA - B paired by seed (the seeds both '
            'runs finished; each seed\'s runs share its pre-training '
            'chain, and a seed whose two runs started from different '
            'networks is left out): the mean of the per-seed differences '
            'with its standard error sd/sqrt(n); "yes" when it is more '
            'than t(0.975, n-1) standard errors from 0 (a two-sided 5% '
            'paired t-test). Each row is its own test, not corrected for '
            'the number of rows, and the t-test takes the seeds as '
            'independent, which they are not quite (they share data '
            'orders; see the project README).\n\n'
            f'{comparisons}\n' + (
                '\n## ReActNet-style training against the gap\n\n'
                "Share of the gap closed = (recipe - the paper's binary "
                'network) / (its real-valued network - the binary '
                'network), from the means over the seeds where all three '
                f'finished.\n\n{gaps}\n' if gaps else ''))


if __name__ == '__main__':
    main()
