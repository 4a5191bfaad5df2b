"""Build a model from a config, as analysis, deployment and the tools do."""
import copy
from typing import Optional, Union

import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmpretrain.registry import MODELS

from mmbireal.utils import load_fitting_checkpoint
from mmbireal.utils.config import read_config


def build_model(config: Union[str, Config],
                checkpoint: Optional[str] = None,
                cfg_options: Optional[dict] = None,
                device: Union[str, torch.device] = 'cpu') -> torch.nn.Module:
    """Build ``cfg.model`` of a config in eval mode, optionally with the
    weights of a checkpoint.

    The model is built as mmengine's Runner builds it: in the config's
    default scope (``mmpretrain`` if it names none; it stays the default
    scope, so the config's datasets can be built next) and with the
    config's top-level ``data_preprocessor`` (mean/std) unless the model
    sets its own. A checkpoint is read weights-only and must fit the
    model: unlike mmengine's non-strict loading, another depth or
    architecture is an error, not a warning with layers left random.

    Args:
        config (str | Config): The config, its file, or a ``pkg::`` path
            in an installed package (``'mmpretrain::resnet/...'``).
        checkpoint (str, optional): Checkpoint to load the weights from.
            Defaults to None (the model's initial weights).
        cfg_options (dict, optional): Config entries to override, as
            ``--cfg-options`` gives them. Defaults to None.
        device (str | torch.device): Where to put the model. Defaults to
            ``'cpu'``.

    Returns:
        nn.Module: The model, in eval mode.

    Raises:
        FileNotFoundError: the config file or the checkpoint does not
            exist.
        CheckpointError: an unreadable checkpoint or one whose keys or
            shapes do not match the config's model (one line).
        KeyError: a ``type`` in the model's config that the registry does
            not hold.

    Example:
        >>> from mmbireal.apis import build_model
        >>> model = build_model('configs/birealnet/bireal18_8xb16_in1k.py')
    """
    cfg = read_config(config) if isinstance(config, str) else config
    if cfg_options:
        cfg = copy.deepcopy(cfg)  # the caller's config stays as it was
        cfg.merge_from_dict(cfg_options)
    model_cfg = cfg.model.copy()
    if cfg.get('data_preprocessor') is not None:
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    model = MODELS.build(model_cfg)
    if checkpoint is not None:
        load_fitting_checkpoint(model, checkpoint)
    return model.to(device).eval()
