"""mmbireal: Bi-Real Net (1-bit CNNs) as an MMPretrain plugin.

Importing the package registers its modules in MMPretrain's registries
(configs do it with ``custom_imports=dict(imports=['mmbireal'])``) and
installs the weights-only checkpoint loader and registers our model index
with MMPretrain's model hub. It also ignores the two dependency warnings of
:data:`mmbireal.utils.console.KNOWN_WARNINGS` (by message), which no user
of this package can act on.
"""
from .utils.console import quiet_known_warnings

quiet_known_warnings()  # before MMPretrain's models are imported below

from mmengine.config.utils import MODULE2PACKAGE as _MODULE2PACKAGE  # noqa: E402

from . import datasets, engine, models  # noqa: E402, F401 (registration)
from .utils import install_safe_checkpoint_loader  # noqa: E402
from .utils.model_zoo import register_model_zoo  # noqa: E402
from .version import __version__  # noqa: E402

install_safe_checkpoint_loader()
register_model_zoo()
# `_base_ = 'mmbireal::birealnet/...'` in a user's config: mmengine reads
# `pkg::` paths of the packages it lists only (OpenMMLab's own)
_MODULE2PACKAGE.setdefault('mmbireal', 'mmbireal')

__all__ = ['__version__']
