"""mmbireal's own registries (its layers and hooks live in MMPretrain's).

``BINARIZERS`` holds the activation and weight binarizers of
:class:`mmbireal.models.BinaryConv2d`; configs name them by string
(``'approx_sign'``) or dict (``dict(type='ApproxSign')``), see
:func:`mmbireal.models.build_binarizer`.
"""
from mmengine.registry import Registry

BINARIZERS = Registry(
    'binarizer', scope='mmbireal', locations=['mmbireal.models.binarizers'])
