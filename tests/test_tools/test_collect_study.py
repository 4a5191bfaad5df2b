"""The reproduction collector: means, spreads and verdicts from run logs."""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch
from helpers import REPO, import_tool_file, run_tool

FULL, STE = 'bireal18_1xb64_fmnist', 'bireal18_ste_1xb64_fmnist'


def _collect_module():
    """tools/reproduce/collect_study.py, imported in-process."""
    return import_tool_file('tools', 'reproduce', 'collect_study.py')


def _todo(root, out, *want) -> list:
    """Seed 0's plan (``collect_study.py --todo 0``), in-process."""
    return _collect_module().runs_to_train(
        CHAIN, list(want) or CHAIN, 0, str(root), str(out))


def _write_run(root, seed: int, run: str, top1: list, flips=None,
               machine=None, capability=None, commit=None) -> None:
    folder = root / f'seed{seed}' / run / '20261201_000000' / 'vis_data'
    folder.mkdir(parents=True)
    if machine:  # the summary line of mmbireal.utils.console
        environment = (f'  - CPU capability usage: {capability}\n'
                       if capability else '')
        (folder.parent / '20261201_000000.log').write_text(
            '2026/12/01 00:00:00 - mmengine - INFO - \nSystem environment:\n'
            f'{environment}'
            f'2026/12/01 00:00:01 - mmengine - INFO - CPU ({machine}; CUDA '
            'not available), 1 process; Python 3.11.7, PyTorch 2.14.1, '
            'MMEngine 0.10.7, MMPretrain 1.2.0, mmbireal 0.1.0' +
            (f' (commit {commit})' if commit else '') + '; seed 0; '
            'environment, config and hooks in full: x.log\n')
    lines = [dict(loss=2.0 - 0.1 * i, step=10 * (i + 1)) for i in range(3)]
    for epoch, acc in enumerate(top1, 1):
        lines.append({'accuracy/top1': acc, 'step': epoch})
        if flips:
            lines.append({'flip_ratio/all': flips[epoch - 1],
                          'flip_ratio/layer1': flips[epoch - 1],
                          'step': epoch})
    (folder / 'scalars.json').write_text(
        ''.join(json.dumps(line) + '\n' for line in lines))


@pytest.mark.slow  # runs the collector in a subprocess
def test_mean_std_and_verdicts(tmp_path):
    root, out = tmp_path / 'runs', tmp_path / 'out'
    # the full method better than STE on every seed: 80/81/82 vs
    # 70/71.5/71; from scratch A and B differ by seed, not in the mean
    scratch = ('bireal18_scratch_1xb64_fmnist',
               'binary-resnet18_scratch_1xb64_fmnist')
    for seed, (a, b, c, d) in enumerate(((80.0, 70.0, 69.0, 68.0),
                                         (81.0, 71.5, 71.0, 72.0),
                                         (82.0, 71.0, 73.0, 72.5))):
        _write_run(root, seed, FULL, [75.0, 78.0, 79.0, a],
                   flips=[0.1, 0.05, 0.01, 0.005])
        _write_run(root, seed, STE, [60.0, 65.0, 68.0, b])
        _write_run(root, seed, scratch[0], [60.0, 65.0, 68.0, c])
        _write_run(root, seed, scratch[1], [60.0, 65.0, 68.0, d])
    proc = run_tool([
        'tools/reproduce/collect_study.py', '--work-root',
        str(root), '--out', str(out), '--seeds', '0', '1', '2', '--', FULL,
        STE, *scratch
    ])
    rows = {}  # each run's first row: the results table's
    for line in proc.stdout.splitlines():
        rows.setdefault(line.split(' | ')[0].lstrip('| '), line)
    full = rows['Bi-Real-18: ApproxSign + magnitude-aware, from clip '
                'pre-training']
    assert '| 81.00 +- 1.00 | 3 | 80.00 | 81.00 | 82.00 |' in full
    # paired by seed: differences 10, 9.5, 11: mean 10.17, SE
    # sd / sqrt(3) = 0.44, far beyond t(0.975, 2) = 4.30 SE
    assert '| ApproxSign vs STE |' in proc.stdout
    assert '| 81.00 vs 70.83 (n = 3, 3) | +10.17 +- 0.44 (3) | yes |' in \
        proc.stdout
    # differences 1, -1, 0.5: +0.17 +- 0.60, within t SE
    assert ('| per-conv shortcut vs 1-bit ResNet, both from scratch | - | '
            '71.00 vs 70.83 (n = 3, 3) | +0.17 +- 0.60 (3) | no |'
            in proc.stdout)
    log = json.loads((out / 'seed1' / f'{FULL}.json').read_text())
    assert log['finished'] and log['val_top1_by_epoch']['4'] == 81.0
    assert log['flip_ratio_by_epoch']['all'] == {
        '1': 0.1, '2': 0.05, '3': 0.01, '4': 0.005}
    assert osp.isfile(out / 'curves.png')
    readme = (out / 'README.md').read_text()
    assert '81.00 +- 1.00' in readme
    # flips: 10% in epoch 1 on every seed, 16.5% summed over the 4 epochs
    assert ('| Bi-Real-18: ApproxSign + magnitude-aware, from clip '
            'pre-training | 3 | 10.000 | 16.500 | 4 |') in readme


@pytest.mark.slow  # runs the collector in a subprocess
def test_one_shared_seed_is_compared_within_its_seed(tmp_path):
    """With one seed that both runs finished, A - B is that seed's
    difference, not the difference of means over unequal seed sets."""
    root, out = tmp_path / 'runs', tmp_path / 'out'
    for seed, a in enumerate((80.0, 78.0, 76.0)):
        _write_run(root, seed, FULL, [70.0, 72.0, 74.0, a])
    _write_run(root, 0, STE, [70.0, 72.0, 74.0, 79.5])
    proc = run_tool([
        'tools/reproduce/collect_study.py', '--work-root', str(root),
        '--out', str(out), '--seeds', '0', '1', '2', '--', FULL, STE
    ])
    # the means give 78.00 - 79.50 = -1.50; seed 0 alone +0.50, and the
    # column beside it shows that seed's values, not the means
    assert ('| 80.00 vs 79.50 (seed 0) | +0.50 (seed 0 only) | needs 2+ '
            'seeds both ran |' in proc.stdout)
    # two shared seeds of three: their means, beside their paired mean
    _write_run(root, 1, STE, [70.0, 72.0, 74.0, 77.0])
    proc = run_tool([
        'tools/reproduce/collect_study.py',
        '--work-root', str(root), '--out', str(out), '--seeds', '0', '1',
        '2', '--', FULL, STE
    ])
    assert '| 79.00 vs 78.25 (seeds 0, 1) | +0.75 +- 0.25 (2) | no |' in \
        proc.stdout


@pytest.mark.slow  # runs the collector in a subprocess
def test_a_committed_log_counts_only_with_all_its_epochs(tmp_path):
    """The epochs a committed log holds decide whether it is finished,
    not its flag (a truncated or hand-edited file, or a config given more
    epochs since)."""
    root, out = tmp_path / 'runs', tmp_path / 'out'
    for seed in (0, 1):
        _write_run(root, seed, FULL, [70.0, 72.0, 74.0, 80.0 + seed])
    run_tool(['tools/reproduce/collect_study.py', '--work-root', str(root),
              '--out', str(out), '--seeds', '0', '1', '--', FULL])
    path = out / 'seed1' / f'{FULL}.json'
    log = json.loads(path.read_text())
    del log['val_top1_by_epoch']['4']  # finished stays true
    path.write_text(json.dumps(log))
    proc = run_tool([
        'tools/reproduce/collect_study.py', '--work-root',
        str(tmp_path / 'elsewhere'), '--out', str(out), '--seeds', '0', '1',
        '--', FULL
    ])
    assert '| 80.00 | 1 | 80.00 | unfinished (74.00 after epoch 3) |' in \
        proc.stdout


@pytest.mark.slow  # runs the collector in a subprocess
def test_each_run_records_the_machine_it_trained_on(tmp_path):
    root, out = tmp_path / 'runs', tmp_path / 'out'
    xeon = 'Intel(R) Xeon(R) Processor'
    _write_run(root, 0, FULL, [75.0, 78.0, 79.0, 80.0], machine=xeon,
               commit='ca49d37')
    _write_run(root, 0, STE, [60.0, 65.0, 68.0, 70.0], machine=xeon,
               commit='1b6379c-dirty')
    _write_run(root, 1, FULL, [75.0, 78.0, 79.0, 81.0])  # an older log
    # one model name, two SIMD levels: the level PyTorch used tells them apart
    _write_run(root, 2, FULL, [75.0, 78.0, 79.0, 82.0], machine='AMD EPYC',
               capability='AVX2')
    _write_run(root, 2, STE, [60.0, 65.0, 68.0, 72.0], machine='AMD EPYC',
               capability='AVX512')
    run_tool([
        'tools/reproduce/collect_study.py', '--work-root',
        str(root), '--out', str(out), '--seeds', '0', '1', '2', '--', FULL,
        STE
    ])
    log = json.loads((out / 'seed0' / f'{FULL}.json').read_text())
    assert log['machines'] == [xeon]
    assert log['commits'] == ['ca49d37']
    log = json.loads((out / 'seed2' / f'{STE}.json').read_text())
    assert log['machines'] == ['AMD EPYC [AVX512]']
    assert log['commits'] == []  # a log from before the commit was logged
    assert ('Trained on (from each run\'s log): seed 0: Intel(R) Xeon(R) '
            'Processor (2 runs); seed 1: not recorded (1 run); seed 2: '
            'AMD EPYC [AVX2] (1 run), AMD EPYC [AVX512] (1 run). With '
            'mmbireal at commit: seed 0: ca49d37 (1 run), 1b6379c-dirty (1 '
            'run); seed 1: not recorded (1 run); seed 2: not recorded (2 '
            'runs).') in (out / 'README.md').read_text()


@pytest.mark.slow  # runs the collector in a subprocess
def test_unfinished_runs_stay_out_of_the_mean(tmp_path):
    root, out = tmp_path / 'runs', tmp_path / 'out'
    _write_run(root, 0, FULL, [75.0, 78.0, 79.0, 80.0])
    _write_run(root, 1, FULL, [70.0, 71.0])  # interrupted after 2 epochs
    proc = run_tool([
        'tools/reproduce/collect_study.py', '--work-root',
        str(root), '--out', str(out), '--seeds', '0', '1', '--', FULL
    ])
    assert '| 80.00 | 1 | 80.00 | unfinished (71.00 after epoch 2) |' in \
        proc.stdout


CHAIN = ['bireal18_relu-pre_1xb64_fmnist',
         'bireal18_leakyclip-pre_1xb64_fmnist',
         'bireal18_clip-pre_1xb64_fmnist', FULL, STE]


@pytest.mark.slow  # runs the collector in a subprocess
def test_committed_logs_outlive_the_work_dirs_and_plan_the_rest(tmp_path):
    """A later session has the committed logs but no checkpoints: the
    finished runs count as before, and only what a missing run needs is
    trained again (its parents, for their checkpoints)."""
    root, out = tmp_path / 'runs', tmp_path / 'out'
    for run in CHAIN[:4]:
        _write_run(root, 0, run, [75.0, 78.0, 79.0, 80.0])
    collect = ['tools/reproduce/collect_study.py', '--out', str(out),
               '--seeds', '0']
    first = run_tool([*collect, '--work-root', str(root), '--', *CHAIN])
    fresh = tmp_path / 'fresh'  # a new session: no work dirs
    again = run_tool([*collect, '--work-root', str(fresh), '--', *CHAIN])
    assert again.stdout == first.stdout
    assert '| 80.00 | 1 | 80.00 |' in again.stdout

    def todo(*want):
        return _todo(fresh, out, *want)

    # STE starts from clip-pre, clip-pre from leakyclip-pre from relu-pre
    assert todo() == [*CHAIN[:3], STE]
    assert todo(FULL) == []
    # STE interrupted: it resumes from its own checkpoint, without clip-pre
    ste = fresh / 'seed0' / STE
    ste.mkdir(parents=True)
    torch.save({'iter': 50}, ste / 'iter_50.pth')
    (ste / 'last_checkpoint').write_text(str(ste / 'iter_50.pth'))
    assert todo() == [STE]
    # the work dir moved: its record names the old place, the file is here
    (ste / 'last_checkpoint').write_text('/moved/away/iter_50.pth')
    assert todo() == [STE]
    # a record of a checkpoint that is gone resumes nothing: STE starts
    # again from clip-pre, which is retrained for it
    (ste / 'iter_50.pth').unlink()
    assert todo() == [*CHAIN[:3], STE]
    (ste / 'last_checkpoint').unlink()
    clip = fresh / 'seed0' / CHAIN[2]
    clip.mkdir(parents=True)
    (clip / 'epoch_4.pth').write_bytes(b'')
    assert todo() == [STE]


def test_a_run_stopped_in_its_last_validation_is_trained_on(tmp_path):
    """Its last checkpoint is written before the last validation: with the
    checkpoint and no final score, the run is planned again (it resumes
    into that validation), and with the score it is done."""
    root, out = tmp_path / 'runs', tmp_path / 'out'
    for run in CHAIN[:3]:
        _write_run(root, 0, run, [75.0, 78.0, 79.0, 80.0])
        (root / 'seed0' / run / 'epoch_4.pth').write_bytes(b'')
    _write_run(root, 0, FULL, [75.0, 78.0, 79.0])
    full = root / 'seed0' / FULL
    (full / 'epoch_4.pth').write_bytes(b'')
    (full / 'last_checkpoint').write_text(str(full / 'epoch_4.pth'))

    def todo():
        return _todo(root, out, FULL)

    assert todo() == [FULL]
    with open(full / '20261201_000000' / 'vis_data' / 'scalars.json',
              'a') as f:
        f.write(json.dumps({'accuracy/top1': 80.0, 'step': 4}) + '\n')
    assert todo() == []


@pytest.mark.slow  # runs the collector in a subprocess
def test_a_distilled_run_needs_its_teacher_chain(tmp_path):
    """The ReActNet-style step 1 starts from scratch but reads the clip
    network as its teacher: planning it trains that chain first."""
    out = tmp_path / 'out'
    react = ['bireal18-react_step1_1xb64_fmnist',
             'bireal18-react_step2_1xb64_fmnist']
    proc = run_tool([
        'tools/reproduce/collect_study.py', '--out', str(out), '--seeds',
        '0', '--work-root', str(tmp_path / 'runs'), '--todo', '0', '--want',
        react[1], '--', *CHAIN[:3], *react])
    assert proc.stdout.split() == [*CHAIN[:3], *react]


# (86 - 80) / (88 - 80); no gap (real = binary): no share, not a crash
@pytest.mark.slow  # runs the collector in a subprocess
@pytest.mark.parametrize('real, share', [(88.0, '75%'), (80.0, '-')])
def test_gap_closed_between_the_binary_and_the_real_network(
        tmp_path, real, share):
    root, out = tmp_path / 'runs', tmp_path / 'out'
    runs = {'bireal18_clip-pre_1xb64_fmnist': real, FULL: 80.0,
            'bireal18-react_step2_1xb64_fmnist': 86.0}
    for run, top1 in runs.items():
        _write_run(root, 0, run, [70.0, 75.0, 78.0, top1])
    proc = run_tool([
        'tools/reproduce/collect_study.py', '--work-root', str(root),
        '--out', str(out), '--seeds', '0', '--', *runs,
        'bireal18-distill_step2_1xb64_fmnist'])
    assert ('| both: the ReActNet-style recipe, two steps | 86.00 | 1 | '
            f'{share} |' in proc.stdout)
    assert '| + distillation, two steps | not run yet | 0 | - |' in \
        proc.stdout
    assert 'share of the gap' in (out / 'README.md').read_text()


@pytest.mark.slow  # runs the collector in a subprocess
def test_the_metafile_gets_the_mean_std_and_seeds(tmp_path):
    """Only the finished runs' models change; comments and the other
    models stay as they were."""
    import yaml
    root, out = tmp_path / 'runs', tmp_path / 'out'
    for seed, top1 in enumerate((80.0, 81.0, 83.0)):
        _write_run(root, seed, FULL, [75.0, 78.0, 79.0, top1])
    _write_run(root, 0, STE, [60.0, 65.0])  # not finished
    entry = ('  - Name: {}\n    Results:\n      - Task: Image Classification'
             '\n        Metrics:\n          Top 1 Accuracy: 1.0\n'
             '          Top 1 Accuracy (paper): 56.4\n'
             '    Config: configs/birealnet/{}.py\n')
    metafile = tmp_path / 'metafile.yml'
    metafile.write_text('# a comment\nModels:\n' + entry.format(FULL, FULL) +
                        entry.format(STE, STE) + entry.format('x', 'x'))
    run_tool([
        'tools/reproduce/collect_study.py', '--work-root', str(root),
        '--out', str(out), '--metafile', str(metafile), '--', FULL, STE
    ])
    text = metafile.read_text()
    assert text.startswith('# a comment\n')
    models = {m['Name']: m['Results'][0]['Metrics']
              for m in yaml.safe_load(text)['Models']}
    # ours replaced, the paper's figure kept
    assert models[FULL] == {'Top 1 Accuracy': 81.33,
                            'Top 1 Accuracy std': 1.53, 'Seeds': 3,
                            'Top 1 Accuracy (paper)': 56.4}
    assert models[STE] == models['x'] == {'Top 1 Accuracy': 1.0,
                                          'Top 1 Accuracy (paper)': 56.4}


@pytest.mark.slow  # runs the collector in a subprocess
def test_a_retrained_run_that_differs_keeps_its_committed_log(tmp_path):
    """Later runs started from the committed run's checkpoint: its figures
    stay, and the difference is a warning on stderr."""
    root, out = tmp_path / 'runs', tmp_path / 'out'
    _write_run(root, 0, FULL, [75.0, 78.0, 79.0, 80.0])
    collect = ['tools/reproduce/collect_study.py', '--out', str(out),
               '--seeds', '0', '--', FULL]
    run_tool([*collect[:5], '--work-root', str(root), *collect[5:]])
    again = tmp_path / 'again'  # retrained elsewhere, another result
    _write_run(again, 0, FULL, [75.0, 78.0, 79.0, 79.5])
    proc = run_tool([*collect[:5], '--work-root', str(again), *collect[5:]])
    assert 'retrained differs from its committed log, which is kept' in \
        proc.stderr
    log = json.loads((out / 'seed0' / f'{FULL}.json').read_text())
    assert log['val_top1_by_epoch']['4'] == 80.0


def test_curves_average_the_finished_seeds_only(tmp_path):
    """A seed still training would otherwise enter the mean at its early
    epochs only, changing n along the curve."""
    collect = _collect_module()

    def run(epochs: int, finished: bool) -> dict:
        return dict(finished=finished, val_top1_by_epoch={
            str(e): 70.0 + e for e in range(1, epochs + 1)})

    seeds = {0: run(4, True), 1: run(4, True), 2: run(2, False)}
    assert collect.seeds_to_plot(seeds) == ([seeds[0], seeds[1]], True)
    running = {2: run(2, False), 3: run(0, False)}
    assert collect.seeds_to_plot(running) == ([running[2]], False)
    assert collect.seeds_to_plot({}) == ([], False)


@pytest.mark.slow  # runs the collector in a subprocess
def test_run_study_resumes_or_starts_each_planned_run(tmp_path):
    """run_study.sh's training commands, with tools/train.py replaced by an
    echo: a run with epoch checkpoints but no last_checkpoint pointer
    resumes from its last whole epoch checkpoint (not one cut short while
    being saved); a new run starts from its parent."""
    root = tmp_path / 'runs'
    relu = root / 'seed5' / CHAIN[0]
    relu.mkdir(parents=True)
    for epoch in (2, 4, 10, 11):  # 10 sorts after 4 as a number, not text
        torch.save({'epoch': epoch}, relu / f'epoch_{epoch}.pth')
    whole = (relu / 'epoch_11.pth').read_bytes()
    (relu / 'epoch_11.pth').write_bytes(whole[:len(whole) // 2])
    fake = tmp_path / 'python'
    fake.write_text(
        '#!/usr/bin/env bash\n'
        'if [[ "$1" == tools/train.py ]]; then echo "TRAIN $*"; exit 0; fi\n'
        'if [[ "$*" == *collect_study.py* && "$*" != *--todo* && '
        '"$*" != *--resume-point* ]]; then exit 0; fi\n'
        f'exec {sys.executable} "$@"\n')
    fake.chmod(0o755)
    env = dict(os.environ, PYTHON=str(fake), MMBIREAL_WORK_DIRS=str(root),
               PYTHONPATH=REPO)
    proc = subprocess.run(
        ['bash', 'tools/reproduce/run_study.sh', '--seeds', '5', '--runs',
         f'{CHAIN[0]} {CHAIN[1]}'], cwd=REPO, env=env, capture_output=True,
        text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    trained = [line for line in proc.stdout.splitlines()
               if line.startswith('TRAIN ')]
    assert len(trained) == 2, proc.stdout
    assert f'--resume {relu}/epoch_10.pth' in trained[0]
    assert 'load_from' not in trained[0]
    assert '--resume' not in trained[1]
    assert f'load_from={relu}/epoch_4.pth' in trained[1]


@pytest.mark.slow  # runs the study script in a subprocess
def test_run_study_stops_on_ctrl_c_and_refuses_a_root_cfg_options_breaks(
        tmp_path):
    """A training stopped by Ctrl-C (exit 130, having said how to resume)
    stops the study with 130, not as a failure; a work root with a space
    would be mangled by --cfg-options, so it is refused at once."""
    fake = tmp_path / 'python'
    fake.write_text(
        '#!/usr/bin/env bash\n'
        'if [[ "$1" == tools/train.py ]]; then exit 130; fi\n'
        'if [[ "$*" == *collect_study.py* && "$*" != *--todo* && '
        '"$*" != *--resume-point* ]]; then exit 0; fi\n'
        f'exec {sys.executable} "$@"\n')
    fake.chmod(0o755)
    command = ['bash', 'tools/reproduce/run_study.sh', '--seeds', '5',
               '--runs', CHAIN[0]]
    env = dict(os.environ, PYTHON=str(fake), PYTHONPATH=REPO,
               MMBIREAL_WORK_DIRS=str(tmp_path / 'runs'))
    proc = subprocess.run(command, cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 130, proc.stderr
    assert 'failed' not in proc.stderr
    assert 'stopped; the same run_study.sh command resumes the study' in \
        proc.stderr
    env['MMBIREAL_WORK_DIRS'] = str(tmp_path / 'my runs')
    proc = subprocess.run(command, cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.startswith('error: MMBIREAL_WORK_DIRS=')
    assert not (tmp_path / 'my runs').exists()


@pytest.mark.slow  # runs the study script in a subprocess
def test_run_study_answers_a_bad_value_in_one_line(tmp_path):
    """A flag without its value, or with one it cannot use, ends in the
    script's own line (set -u's 'unbound variable' before), before any
    work."""
    env = dict(os.environ, MMBIREAL_WORK_DIRS=str(tmp_path / 'runs'))
    cases = (
        (['--gpus', 'two'], "error: --gpus takes a number of GPUs (0: no "
         "launcher), got 'two'"),
        (['--gpus'], "error: --gpus takes a number of GPUs (0: no "
         "launcher), got ''"),
        (['--seeds'], 'error: --seeds takes a value, e.g. --seeds "0 1 2"'),
        (['--seeds', '--study'],
         'error: --seeds takes a value, e.g. --seeds "0 1 2"'),
        (['--seeds', '0 x'], 'error: --seeds takes whole numbers, e.g. '
         '--seeds "0 1 2"; got \'x\''),
        (['--runs'], 'error: --runs takes a value, e.g. --runs '
         '"bireal18_1xb64_fmnist"'),
    )
    for args, line in cases:
        proc = subprocess.run(['bash', 'tools/reproduce/run_study.sh',
                               *args], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=60)
        assert (proc.returncode, proc.stderr) == (2, line + '\n'), args
    assert not (tmp_path / 'runs').exists()


@pytest.mark.slow  # runs the study script in a subprocess
def test_run_study_dry_run_plans_without_training_or_writing(tmp_path):
    """--dry-run prints each seed's plan (the pre-training chain a run
    needs included) and its epochs, and neither trains nor collects."""
    marker = tmp_path / 'collected'
    fake = tmp_path / 'python'
    fake.write_text(
        '#!/usr/bin/env bash\n'
        'if [[ "$1" == tools/train.py ]]; then echo "TRAIN $*"; exit 0; fi\n'
        'if [[ "$*" == *collect_study.py* && "$*" != *--todo* && '
        f'"$*" != *--resume-point* ]]; then touch {marker}; exit 0; fi\n'
        f'exec {sys.executable} "$@"\n')
    fake.chmod(0o755)
    env = dict(os.environ, PYTHON=str(fake), PYTHONPATH=REPO,
               MMBIREAL_WORK_DIRS=str(tmp_path / 'runs'))
    proc = subprocess.run(
        ['bash', 'tools/reproduce/run_study.sh', '--seeds', '5', '--runs',
         CHAIN[1], '--dry-run'], cwd=REPO, env=env, capture_output=True,
        text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert 'TRAIN' not in proc.stdout
    assert f'seed 5: 2 runs to train: {CHAIN[0]} {CHAIN[1]}' in proc.stdout
    assert 'seed 5: 8 epochs in all (dry run' in proc.stdout
    assert not marker.exists()
    assert not (tmp_path / 'runs').exists()


def test_runs_from_a_retrained_parent_pair_only_with_each_other(
        tmp_path, capsys):
    """Seed 1's pre-training retrained on another CPU came out differently:
    the runs trained from it record that, and pair with each other but not
    with the seed's committed runs, which started from the committed one."""
    collect = _collect_module()
    root, out = tmp_path / 'runs', tmp_path / 'out'
    clip, long, scaled = ('bireal18_clip-pre_1xb64_fmnist',
                          'bireal18_long_1xb64_fmnist',
                          'bireal18_scaled-sign-long_1xb64_fmnist')
    for seed in (0, 1):
        _write_run(root, seed, clip, [80.0, 82.0, 84.0, 86.0])
        _write_run(root, seed, FULL, [70.0, 72.0, 74.0, 78.0 + seed])
    collect.gather([clip, FULL], [0, 1], str(root), str(out))
    # a later session: seed 0's work dirs are gone, seed 1's clip network
    # was retrained (85.5 now) and both 16-epoch runs trained from it
    again = tmp_path / 'again'
    _write_run(again, 1, clip, [80.0, 82.0, 84.0, 85.5])
    for seed, (a, b) in enumerate(((82.0, 87.0), (80.0, 88.0))):
        _write_run(again, seed, long, [75.0] * 15 + [a])
        _write_run(again, seed, scaled, [75.0] * 15 + [b])
    results = collect.gather([clip, FULL, long, scaled], [0, 1],
                             str(again), str(out))
    assert 'seed 1 bireal18_clip-pre_1xb64_fmnist retrained differs' in \
        capsys.readouterr().err
    assert results[clip][1]['val_top1_by_epoch']['4'] == 86.0  # committed
    assert results[long][1]['started_from'] == {
        clip: {'1': 80.0, '2': 82.0, '3': 84.0, '4': 85.5}}
    assert results[long][0]['started_from'][clip]['4'] == 86.0
    table = collect.comparison_table(results)
    # the two 16-epoch runs share their start on both seeds
    assert ('| 81.00 vs 87.50 (n = 2, 2) | -6.50 +- 1.50 (2) | no |'
            in table)
    # 16 against 4 epochs: seed 1's runs started from different networks
    assert ('| 82.00 vs 78.00 (seed 0) | +4.00 (seed 0 only; seed 1 left '
            'out: different starting networks) |' in table)
    note = collect.chain_note(results)
    assert 'seed 1 bireal18_long started from a retraining of ' \
        'bireal18_clip-pre (85.50 against 86.00 in the tables)' in note
    assert 'seed 0' not in note
    # collected again, each run keeps the start it recorded, though its
    # parent's work dir now holds yet another retraining
    later = tmp_path / 'later'
    _write_run(later, 1, clip, [80.0, 82.0, 84.0, 85.0])
    _write_run(later, 1, long, [75.0] * 15 + [80.0])
    results = collect.gather([clip, FULL, long, scaled], [0, 1],
                             str(later), str(out))
    assert results[long][1]['started_from'][clip]['4'] == 85.5


def test_a_run_started_again_from_scratch_drops_the_earlier_scores(
        tmp_path):
    """Sessions of one run merge while each resumes the one before; a
    session that starts from scratch (its log has no 'resumed epoch')
    begins the run again, so an earlier finished try does not finish it."""
    collect = _collect_module()
    run_dir = tmp_path / FULL

    def session(stamp: str, first_epoch: int, top1: list,
                resumed: bool) -> None:
        folder = run_dir / stamp / 'vis_data'
        folder.mkdir(parents=True)
        (folder.parent / f'{stamp}.log').write_text(
            'INFO - resumed epoch: 1, iter: 10\n' if resumed else
            'INFO - Checkpoints will be saved to work_dirs.\n')
        (folder / 'scalars.json').write_text(''.join(
            json.dumps({'accuracy/top1': acc, 'step': epoch}) + '\n'
            for epoch, acc in enumerate(top1, first_epoch)))

    session('20261201_000000', 1, [70.0, 72.0, 74.0, 80.0], resumed=False)
    assert collect.read_scalars(str(run_dir))['accuracy/top1'][4] == 80.0
    session('20261202_000000', 1, [71.0], resumed=False)  # from scratch
    session('20261203_000000', 2, [73.0], resumed=True)
    assert collect.read_scalars(str(run_dir))['accuracy/top1'] == {
        1: 71.0, 2: 73.0}


@pytest.mark.parametrize('spread,verdict', [(1.0, 'no'), (0.77, 'yes')])
def test_the_verdict_uses_t_with_n_minus_1_degrees(spread, verdict):
    """Three seeds, paired differences 2 - s, 2, 2 + s: the mean is 3.5 SE
    from 0 for s = 1 (inside t(0.975, 2) = 4.30, though beyond the 3.18 of
    3 degrees), 4.5 SE for s = 0.77."""
    collect = _collect_module()

    def runs(top1):
        return {s: {'val_top1_by_epoch': {'4': v}, 'finished': True}
                for s, v in enumerate(top1)}

    results = {FULL: runs([82.0 - spread, 82.0, 82.0 + spread]),
               STE: runs([80.0, 80.0, 80.0])}
    row = [line for line in collect.comparison_table(results).splitlines()
           if line.startswith('| ApproxSign vs STE |')]
    assert row and row[0].endswith(f'(3) | {verdict} |')


@pytest.mark.slow  # runs a shell script
@pytest.mark.parametrize('script', ['reproduce/run_study.sh',
                                    'quickstart.sh'])
def test_the_scripts_print_their_usage(script):
    proc = run_tool(['bash', f'tools/{script}', '--help'], timeout=30)
    assert proc.returncode == 0 and not proc.stderr
    assert 'tools/' in proc.stdout and not proc.stdout.startswith('#')
    assert 'set -' not in proc.stdout  # the comment only, not the code


def test_a_resuming_lr_alpha_run_still_needs_its_parent(tmp_path):
    """run_study.sh reads the lr-alpha run's 1 / mean(alpha) from its
    parent's checkpoint at every start, also when it resumes; another
    resuming run no longer reads its load_from."""
    lr_alpha = 'bireal18_lr-alpha_1xb64_fmnist'
    chain = [*CHAIN[:3], STE, lr_alpha]
    root, out = tmp_path / 'runs', tmp_path / 'out'
    for run in (STE, lr_alpha):  # both interrupted after iteration 50
        folder = root / 'seed0' / run
        folder.mkdir(parents=True)
        torch.save({'iter': 50}, folder / 'iter_50.pth')
        (folder / 'last_checkpoint').write_text(str(folder / 'iter_50.pth'))
    todo = _collect_module().runs_to_train
    assert todo(chain, [STE], 0, str(root), str(out)) == [STE]
    assert todo(chain, [lr_alpha], 0, str(root), str(out)) == [
        *CHAIN[:3], lr_alpha]
