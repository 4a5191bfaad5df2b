"""tools/test.py --show-dir / --interval and --tta, as in MMPretrain."""
import os
import pickle
import signal
import subprocess
import sys

import cv2
import numpy as np
import pytest
from helpers import REPO, popen_interruptible, run_tool, tiny_random_checkpoint

# 64 test images in batches of 256 (one batch)
OPTIONS = ['test_dataloader.num_workers=0',
           'test_dataloader.dataset.indices=64']


@pytest.fixture(scope='module')
def tiny_checkpoint(tmp_path_factory):
    root = tmp_path_factory.mktemp('test_tool')
    return (*tiny_random_checkpoint(root), root)


def run_test_tool(config, checkpoint, *args):
    return run_tool(['tools/test.py', config, checkpoint, *args,
                     '--cfg-options', *OPTIONS])


def softmax_scores(config: str, checkpoint: str, count: int) -> tuple:
    """In process: the class scores of the first ``count`` test images and
    of their mirror images."""
    import torch
    from mmengine.config import Config
    from mmengine.dataset import pseudo_collate
    from mmpretrain.registry import DATASETS

    from mmbireal.apis import build_model
    cfg = Config.fromfile(config)
    cfg.merge_from_dict(dict(test_dataloader=dict(dataset=dict(
        indices=count))))
    model = build_model(cfg, checkpoint)
    dataset = DATASETS.build(cfg.test_dataloader.dataset)
    data = model.data_preprocessor(
        pseudo_collate([dataset[i] for i in range(count)]), False)
    with torch.no_grad():
        return tuple(model(x, mode='tensor').softmax(1).numpy()
                     for x in (data['inputs'], data['inputs'].flip(-1)))


@pytest.mark.slow
def test_show_dir_draws_every_interval_th_image_in_gray(
        fmnist_available, tiny_checkpoint):
    config, checkpoint, root = tiny_checkpoint
    show = root / 'vis'
    run_test_tool(config, checkpoint, '--work-dir', str(root / 'w'),
              '--show-dir', str(show), '--interval', '16')
    names = sorted(p.name for p in show.iterdir())
    assert names == ['0_0.png', '16_0.png', '32_0.png', '48_0.png']
    image = cv2.imread(str(show / '16_0.png'))
    # 28 px enlarged to 224 so the labels are readable
    assert image.shape == (224, 224, 3)
    # drawn in gray (a false-colour map would make the channels differ);
    # only the label box has colour
    gray = (image[..., 0] == image[..., 1]) & (image[..., 1] == image[..., 2])
    assert gray.mean() > 0.7
    # with --tta the batch holds one list of images per view: the first
    # (the unflipped image) is drawn
    tta = root / 'vis_tta'
    run_test_tool(config, checkpoint, '--work-dir', str(root / 'w'),
                  '--show-dir', str(tta), '--interval', '16', '--tta')
    assert sorted(p.name for p in tta.iterdir()) == names
    drawn = cv2.imread(str(tta / '16_0.png'))[112:]  # below the label
    plain = image[112:]
    assert (drawn == plain).mean() > (drawn == plain[:, ::-1]).mean()


@pytest.mark.slow
def test_tta_averages_the_flipped_view(fmnist_available, tiny_checkpoint):
    config, checkpoint, root = tiny_checkpoint
    scores = {}
    for name, args in (('plain', ()), ('tta', ('--tta', ))):
        out = root / f'{name}.pkl'
        proc = run_test_tool(config, checkpoint, '--work-dir', str(root / 'w'),
                         '--out', str(out), *args)
        assert 'accuracy/top1: ' in proc.stdout
        with open(out, 'rb') as f:
            scores[name] = np.stack([s['pred_score'] for s in pickle.load(f)])
    assert scores['plain'].shape == scores['tta'].shape == (64, 10)
    assert not np.allclose(scores['plain'], scores['tta'])
    # AverageClsScoreTTA: the mean of the image's and its mirror image's
    # class scores, from the checkpoint's weights
    plain, mirrored = softmax_scores(config, checkpoint, 64)
    assert np.allclose(scores['plain'], plain, atol=1e-5)
    assert np.allclose(scores['tta'], (plain + mirrored) / 2, atol=1e-5)

    proc = run_tool(['tools/test.py', config, checkpoint, '--work-dir',
                     str(root / 'w'), '--tta', '--cfg-options', *OPTIONS,
                     'tta_model=None'], check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        f'error: --tta: config {config} does not set tta_model; add e.g. '
        "tta_model = dict(type='AverageClsScoreTTA') and a tta_pipeline "
        'ending in TestTimeAug (see '
        'configs/_base_/datasets/fashion_mnist_bs64.py)')


@pytest.mark.slow
def test_ctrl_c_during_test_is_one_line(fmnist_available, tiny_checkpoint):
    config, checkpoint, root = tiny_checkpoint
    out = root / 'interrupted.pkl'
    env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS='2')
    # the whole test set in batches of 8: long enough to interrupt
    proc = popen_interruptible(
        [sys.executable, 'tools/test.py', config, checkpoint, '--work-dir',
         str(root / 'w'), '--out', str(out), '--cfg-options',
         'test_dataloader.num_workers=0', 'test_dataloader.batch_size=8',
         'default_hooks.logger.interval=5'],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if 'Epoch(test)' in line:
            proc.send_signal(signal.SIGINT)
            break
    rest, err = proc.communicate(timeout=300)
    # what the tool printed around the signal, if it went on regardless
    assert proc.returncode == 130, ''.join(seen[-3:]) + rest[-1500:] + err
    assert err.strip().splitlines() == [
        'interrupted: the test is not finished and has no partial result; '
        f'{out} was not written; run the same command again'
    ]
    assert not out.exists()
