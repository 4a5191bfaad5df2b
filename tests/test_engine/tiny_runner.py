"""A small real mmengine Runner: a 2-conv net on 16 random 6x6 images.

Tests build runners with :func:`make_runner`; they train in the test's
process, in a second or two, with the package's own hooks, constructor
and loop.
"""
import copy
import itertools
import os.path as osp
from typing import Dict, Optional

import torch
import torch.nn.functional as F
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch import nn

import mmbireal  # noqa: F401 (registers the hooks, constructor and loop)
from mmbireal.models import BinaryConv2d

BATCH, IMAGES = 4, 16  # 4 iterations per epoch
_names = itertools.count()


class TinyNet(BaseModel):
    """Real stem conv, BN, one binary conv, BN, linear classifier."""

    def __init__(self, weight_binarizer: str = 'magnitude_aware') -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.bn0 = nn.BatchNorm2d(4)
        self.conv = BinaryConv2d(
            4, 4, 3, padding=1, bias=False, act_binarizer='approx_sign',
            weight_binarizer=weight_binarizer)
        self.bn1 = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 3)
        with torch.no_grad():  # the same start in every test
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5)

    def forward(self, inputs, labels=None, mode='tensor'):
        x = self.bn0(self.stem(inputs))
        x = self.bn1(self.conv(x)) + x
        logits = self.fc(x.mean((2, 3)))
        if mode == 'loss':
            return dict(loss=F.cross_entropy(logits, labels))
        return logits


class NoisyImages(torch.utils.data.Dataset):
    """Fixed images plus noise drawn from the global generator, like data
    augmentation in the main process (``num_workers=0``)."""

    def __init__(self) -> None:
        gen = torch.Generator().manual_seed(1)
        self.images = torch.randn(IMAGES, 1, 6, 6, generator=gen)
        self.labels = torch.randint(0, 3, (IMAGES, ), generator=gen)

    def __len__(self) -> int:
        return IMAGES

    def __getitem__(self, i: int) -> dict:
        noise = 0.1 * torch.randn(1, 6, 6)
        return dict(inputs=self.images[i] + noise, labels=self.labels[i])


class Interrupted(Exception):
    pass


class InterruptAtIter(Hook):
    """Stop the run after iteration ``at_iter`` (1-based) is checkpointed,
    as a crash would."""

    priority = 'LOWEST'  # after CheckpointHook

    def __init__(self, at_iter: int) -> None:
        self.at_iter = at_iter

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        if runner.iter + 1 == self.at_iter:
            raise Interrupted


class RecordGroups(Hook):
    """Keep the group layout the run built (``layout``: tag and size of
    each group, before a resumed state is loaded) and every group's tag, lr
    and weight_decay as the optimizer step of each iteration sees them
    (``seen``)."""

    priority = 'LOWEST'

    def __init__(self) -> None:
        self.layout, self.seen = [], []

    def before_run(self, runner) -> None:
        groups = runner.optim_wrapper.optimizer.param_groups
        self.layout = [(g.get('mmbireal_group'), len(g['params']))
                       for g in groups]

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        groups = runner.optim_wrapper.optimizer.param_groups
        self.seen.append([(g.get('mmbireal_group'), g['lr'],
                           g['weight_decay']) for g in groups])


def optim_cfg(weight_decay: float = 1e-4, **switches) -> dict:
    """SGD with momentum through BinaryOptimWrapperConstructor."""
    cfg = dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9,
                              weight_decay=weight_decay))
    if switches:
        cfg.update(constructor='BinaryOptimWrapperConstructor',
                   paramwise_cfg=switches)
    return cfg


def make_runner(work_dir, hooks=(), optim_wrapper: Optional[Dict] = None,
                param_scheduler=None, model: Optional[nn.Module] = None,
                max_epochs: int = 2,
                loop: str = 'ResumableEpochBasedTrainLoop',
                loop_options: Optional[Dict] = None, **kwargs) -> Runner:
    """A Runner training ``model`` (default a :class:`TinyNet`) for
    ``max_epochs`` with a checkpoint every iteration; ``loop_options`` go
    to the loop, ``kwargs`` to the Runner (e.g. ``load_from``, ``resume``,
    ``randomness``; ``default_hooks`` replace or add to these)."""
    return Runner(
        model=model or TinyNet(),
        work_dir=str(work_dir),
        experiment_name=f'tiny{next(_names)}',
        train_dataloader=dict(
            dataset=NoisyImages(),
            sampler=dict(type='DefaultSampler', shuffle=True),
            batch_size=BATCH,
            num_workers=0,
            collate_fn=dict(type='default_collate')),
        train_cfg=dict(type=loop, max_epochs=max_epochs,
                       **(loop_options or {})),
        optim_wrapper=copy.deepcopy(optim_wrapper or optim_cfg()),
        param_scheduler=copy.deepcopy(param_scheduler or dict(
            type='MultiStepLR', by_epoch=True, milestones=[1], gamma=0.1)),
        custom_hooks=list(hooks),
        default_hooks={
            'checkpoint': dict(type='CheckpointHook', by_epoch=False,
                               interval=1, max_keep_ckpts=-1),
            'logger': dict(type='LoggerHook', interval=1),
            **kwargs.pop('default_hooks', {})},
        default_scope='mmpretrain',
        **{'randomness': dict(seed=0), **kwargs})


def log_text(runner: Runner) -> str:
    with open(osp.join(runner.log_dir, f'{runner.timestamp}.log')) as f:
        return f.read()


def weights(model: nn.Module) -> Dict[str, torch.Tensor]:
    """A copy of the model's state dict."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}
