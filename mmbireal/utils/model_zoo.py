"""Make mmbireal's models known to MMPretrain's model hub.

After ``import mmbireal``, ``mmpretrain.list_models('*bireal*')``,
``mmpretrain.get_model('bireal18_8xb16_in1k')`` and
``ImageClassificationInferencer`` find our models, as MMPretrain's own.
"""
import os.path as osp
from typing import Optional

PACKAGE_DIR = osp.dirname(osp.dirname(osp.abspath(__file__)))


def model_index_path() -> Optional[str]:
    """``model-index.yml`` of an installed wheel or of the source checkout."""
    for path in (osp.join(PACKAGE_DIR, '.mim', 'model-index.yml'),
                 osp.join(osp.dirname(PACKAGE_DIR), 'model-index.yml')):
        if osp.isfile(path):
            return path
    return None


def register_model_zoo() -> None:
    """Register our model index with MMPretrain's ``ModelHub`` (once)."""
    from mmpretrain.apis.model import ModelHub
    path = model_index_path()
    if path is None or ModelHub.has('bireal18_8xb16_in1k'):
        return
    # config paths in the metafiles are relative to the model index
    ModelHub.register_model_index(path, config_prefix=osp.dirname(path))
