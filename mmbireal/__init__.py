"""mmbireal: Bi-Real Net (1-bit CNNs) as an MMPretrain plugin.

Importing the package registers its modules in MMPretrain's registries
(configs do it with ``custom_imports=dict(imports=['mmbireal'])``) and
installs the weights-only checkpoint loader and registers our model index
with MMPretrain's model hub.
"""
from . import datasets, engine, models  # noqa: F401 (registration)
from .utils import install_safe_checkpoint_loader
from .utils.model_zoo import register_model_zoo
from .version import __version__

install_safe_checkpoint_loader()
register_model_zoo()

__all__ = ['__version__']
