"""An ImageClassifier trained on a frozen teacher's class distribution."""
import os.path as osp
from typing import List, Optional, Union

import torch
import torch.nn as nn
from mmengine.config import Config
from mmpretrain.models import ImageClassifier
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from mmbireal.utils.checkpoint import load_fitting_checkpoint
from mmbireal.utils.errors import CheckpointError, InputError


@MODELS.register_module()
class DistillImageClassifier(ImageClassifier):
    """An :class:`~mmpretrain.models.ImageClassifier` distilled from a
    frozen real-valued teacher (ReActNet's distributional loss).

    The training loss is ``(1 - alpha) * distill + alpha * label``:
    ``distill`` compares the teacher's softmax with the student's
    log-softmax (``distill_loss``; the default, MMPretrain's soft
    cross-entropy, is ``-sum p_teacher * log p_student`` averaged over the
    batch, the KL divergence up to the teacher's entropy), ``label`` is the
    head's own loss on the labels. ``alpha=0`` (the authors') computes no
    label loss. Prediction and the state dict are those of a plain
    ImageClassifier with the same backbone, neck and head.

    The teacher is built from ``teacher_cfg`` when the classifier is built
    and gets its weights from ``teacher_ckpt`` in :meth:`init_weights`,
    which mmengine's runner calls before training (a missing or unfitting
    file stops the run there, in one line); testing, export and inference
    never read the teacher's checkpoint. It is not a submodule: it has no
    place in ``parameters()`` (so none in the optimizer or DDP's gradient
    buckets) nor in ``state_dict()`` (so checkpoints hold the student
    only, and ``load_from``/``--resume`` work as for the plain
    classifier). It follows the student's device and dtype, always runs in
    eval mode without gradients, and sees the student's normalised inputs,
    so its config must normalise as the student's does (checked).

    Args:
        backbone, neck, head, pretrained, train_cfg, data_preprocessor,
            init_cfg: As :class:`~mmpretrain.models.ImageClassifier`.
        teacher_cfg (str | dict): The teacher: a config file (a path or
            ``'mmpretrain::resnet/resnet34_8xb32_in1k.py'``) whose
            ``model`` is built, or a model config dict.
        teacher_ckpt (str): The teacher's checkpoint (read weights-only; its
            keys and shapes must fit the teacher).
        distill_loss (dict): The loss of the student's logits against the
            teacher's probabilities. Defaults to
            ``dict(type='CrossEntropyLoss', use_soft=True)``.
        alpha (float): Weight of the label loss, in [0, 1]. Defaults to 0.

    Example:
        >>> model = dict(
        ...     type='DistillImageClassifier',
        ...     backbone=dict(type='BiRealNet', depth=18),
        ...     neck=dict(type='GlobalAveragePooling'),
        ...     head=dict(type='LinearClsHead', num_classes=1000,
        ...               in_channels=512),
        ...     teacher_cfg='mmpretrain::resnet/resnet34_8xb32_in1k.py',
        ...     teacher_ckpt='checkpoints/resnet34_8xb32_in1k.pth')
    """

    def __init__(self,
                 backbone: dict,
                 teacher_cfg: Union[str, dict],
                 teacher_ckpt: str,
                 neck: Optional[dict] = None,
                 head: Optional[dict] = None,
                 distill_loss: dict = dict(
                     type='CrossEntropyLoss', use_soft=True),
                 alpha: float = 0.0,
                 pretrained: Optional[str] = None,
                 train_cfg: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(backbone, neck, head, pretrained, train_cfg,
                         data_preprocessor, init_cfg)
        if isinstance(alpha, bool) or not isinstance(
                alpha, (int, float)) or not 0 <= alpha <= 1:
            raise InputError(f'alpha (the label loss weight) must be in '
                             f'[0, 1], got {alpha!r}')
        if not isinstance(teacher_ckpt, str) or not teacher_ckpt:
            raise InputError('teacher_ckpt must be the path of the '
                             f"teacher's checkpoint, got {teacher_ckpt!r}")
        self.alpha = float(alpha)
        self.teacher_ckpt = teacher_ckpt
        self.distill_loss = MODELS.build(distill_loss)
        teacher = _build_teacher(teacher_cfg).requires_grad_(False).eval()
        self._check_teacher(teacher, teacher_cfg)
        # in __dict__, not _modules: see the class docstring
        self.__dict__['teacher'] = teacher
        self._teacher_loaded = False

    def _check_teacher(self, teacher: nn.Module,
                       teacher_cfg: Union[str, dict]) -> None:
        """Refuse a teacher of other classes or other normalisation."""
        where = teacher_cfg if isinstance(teacher_cfg, str) else 'teacher_cfg'
        classes = getattr(getattr(teacher, 'head', None), 'num_classes', None)
        if classes is not None and classes != self.head.num_classes:
            raise InputError(f'the teacher of {where} has {classes} classes, '
                             f'the student {self.head.num_classes}')
        ours, theirs = self.data_preprocessor, getattr(
            teacher, 'data_preprocessor', None)
        for name in ('mean', 'std', 'to_rgb'):
            a, b = getattr(ours, name, None), getattr(theirs, name, None)
            if b is None:  # the teacher's config does not say
                continue
            if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
                same = a.shape == b.shape and torch.equal(a, b)
            else:
                same = a == b
            if not same:
                raise InputError(
                    f'the teacher of {where} normalises its inputs with '
                    f'{name}={_shown(b)}, the student with {_shown(a)}; the '
                    "teacher sees the student's inputs, so they must agree")

    def _apply(self, fn, *args, **kwargs):
        # .to(), .cuda(), .half() ... reach the teacher too
        super()._apply(fn, *args, **kwargs)
        self.teacher._apply(fn, *args, **kwargs)
        return self

    def init_weights(self) -> None:
        """The student's initialisation, then the teacher's checkpoint.

        Raises:
            InputError: ``teacher_ckpt`` does not exist.
            CheckpointError: it is unreadable or does not fit the teacher.
        """
        super().init_weights()
        path = self.teacher_ckpt
        if '://' not in path and not osp.isfile(osp.expanduser(path)):
            raise InputError(f'teacher_ckpt {path} does not exist (train or '
                             'download the teacher first)')
        try:
            load_fitting_checkpoint(self.teacher, path)
        except CheckpointError as e:
            raise CheckpointError(f'teacher: {e}') from None
        self._teacher_loaded = True

    def teacher_logits(self, inputs: torch.Tensor) -> torch.Tensor:
        """The teacher's logits for the student's (normalised) inputs."""
        if not self._teacher_loaded:
            raise RuntimeError('the teacher has no weights yet: they are '
                               'loaded by init_weights(), which the runner '
                               'calls before training')
        self.teacher.eval()
        with torch.no_grad():
            return self.teacher(inputs, mode='tensor')

    def loss(self, inputs: torch.Tensor,
             data_samples: List[DataSample]) -> dict:
        """The student's losses: ``1 - alpha`` times ``distill_loss``
        against the teacher's softmax, and ``alpha`` times the head's loss
        on the labels (none when ``alpha`` is 0).

        Args:
            inputs (Tensor): The batch.
            data_samples (list[DataSample]): Its labels.

        Returns:
            dict: The losses; mmengine sums the keys containing ``loss``.
        """
        logits = self.head(self.extract_feat(inputs))
        losses = {}
        if self.alpha > 0:
            for key, value in self.head._get_loss(logits,
                                                  data_samples).items():
                losses[key] = value * self.alpha if 'loss' in key else value
        if self.alpha < 1:
            target = self.teacher_logits(inputs).float().softmax(dim=1)
            losses['loss_distill'] = (1 - self.alpha) * self.distill_loss(
                logits, target)
        return losses


def _build_teacher(teacher_cfg: Union[str, dict]) -> nn.Module:
    from mmbireal.apis.model import build_model  # apis imports models
    if isinstance(teacher_cfg, dict):
        return build_model(Config(dict(model=teacher_cfg)))
    if not isinstance(teacher_cfg, str):
        raise InputError('teacher_cfg must be a config file or a model '
                         f'config dict, got {teacher_cfg!r}')
    from mmbireal.utils.config import read_config
    return build_model(read_config(teacher_cfg))


def _shown(value) -> str:
    if isinstance(value, torch.Tensor):
        return str([round(v, 3) for v in value.flatten().tolist()])
    return str(value)
