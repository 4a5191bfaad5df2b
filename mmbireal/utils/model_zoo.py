"""Make mmbireal's models known to MMPretrain's model hub.

After ``import mmbireal``, ``mmpretrain.list_models('*bireal*')``,
``mmpretrain.get_model('bireal18_8xb16_in1k')`` and
``ImageClassificationInferencer`` find our models, as MMPretrain's own, and
``pretrained=True`` loads the weights shipped in ``configs/birealnet/weights``.
"""
import os.path as osp
from typing import Dict, List, Optional

from .paths import PACKAGE_DIR, PACKAGE_PARENT


def model_index_path() -> Optional[str]:
    """``model-index.yml`` of an installed wheel or of the source checkout."""
    for path in (osp.join(PACKAGE_DIR, '.mim', 'model-index.yml'),
                 osp.join(PACKAGE_PARENT, 'model-index.yml')):
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
    root = osp.dirname(path)
    ModelHub.register_model_index(path, config_prefix=root)
    # and so are the weights we ship in the repo (and the wheel's .mim),
    # which MMPretrain would look for in the working directory. get()
    # returns copies: the registered entries are in _models_dict.
    for name in _model_names(path):
        model = ModelHub._models_dict[name.lower()]
        if model.weights and '://' not in model.weights and \
                not osp.isabs(model.weights):
            model.weights = osp.join(root, model.weights)


def _model_names(model_index: str) -> List[str]:
    from modelindex.load_model_index import load
    return [model.name for model in load(model_index).models]


def shipped_weights() -> Dict[str, str]:
    """Model-zoo name -> weights file, for the entries that ship their
    weights (``Weights:`` a file in the repo and the wheel)."""
    from mmpretrain.apis.model import ModelHub
    register_model_zoo()
    path = model_index_path()
    models = [ModelHub._models_dict[name.lower()]
              for name in (_model_names(path) if path else [])]
    return {model.name: model.weights for model in models
            if model.weights and osp.isfile(model.weights)}


def shipped_weights_file(path: str) -> str:
    """``path`` if it is a file, else the shipped weights of the model-zoo
    entry it names (in any case, as MMPretrain's ``get_model`` takes
    names).

    Raises:
        FileNotFoundError: ``path`` is neither a file nor the name of an
            entry with shipped weights.
    """
    if osp.isfile(osp.expanduser(path)):
        return path
    shipped = shipped_weights()
    by_name = {name.lower(): file for name, file in shipped.items()}
    if path.lower() not in by_name:
        raise FileNotFoundError(
            f'{path}: no such file, nor the name of a model-zoo entry with '
            f'shipped weights ({", ".join(sorted(shipped))})')
    return by_name[path.lower()]
