"""mmbireal's registries.

``BINARIZERS`` holds the activation and weight binarizers of
:class:`mmbireal.models.BinaryConv2d`; configs name them by string
(``'approx_sign'``) or dict (``dict(type='ApproxSign')``), see
:func:`mmbireal.models.build_binarizer`.

Our layers, hooks and datasets register in MMPretrain's registries, so
MMPretrain's tools and APIs find them. Each of those registries also gets
a child of scope ``mmbireal`` here, which holds nothing and searches its
parent: a config that inherits ours (``_base_ = 'mmbireal::...'``) is built
in that scope, and mmengine looks the scope up in every registry tree
(without it, MMPretrain's ``get_model`` and inferencers warn that the scope
is not found before falling back to MMPretrain's registry).
"""
from mmengine.registry import Registry
from mmpretrain import registry as mmpretrain_registry

BINARIZERS = Registry(
    'binarizer', scope='mmbireal', locations=['mmbireal.models.binarizers'])


def _child(parent: Registry) -> Registry:
    # the parent's locations: a lookup here imports what it would import
    return Registry(parent.name, parent=parent, scope='mmbireal',
                    locations=list(parent._locations))


RUNNERS = _child(mmpretrain_registry.RUNNERS)
RUNNER_CONSTRUCTORS = _child(mmpretrain_registry.RUNNER_CONSTRUCTORS)
LOOPS = _child(mmpretrain_registry.LOOPS)
HOOKS = _child(mmpretrain_registry.HOOKS)
LOG_PROCESSORS = _child(mmpretrain_registry.LOG_PROCESSORS)
OPTIMIZERS = _child(mmpretrain_registry.OPTIMIZERS)
OPTIM_WRAPPERS = _child(mmpretrain_registry.OPTIM_WRAPPERS)
OPTIM_WRAPPER_CONSTRUCTORS = _child(
    mmpretrain_registry.OPTIM_WRAPPER_CONSTRUCTORS)
PARAM_SCHEDULERS = _child(mmpretrain_registry.PARAM_SCHEDULERS)
DATASETS = _child(mmpretrain_registry.DATASETS)
DATA_SAMPLERS = _child(mmpretrain_registry.DATA_SAMPLERS)
TRANSFORMS = _child(mmpretrain_registry.TRANSFORMS)
MODELS = _child(mmpretrain_registry.MODELS)
MODEL_WRAPPERS = _child(mmpretrain_registry.MODEL_WRAPPERS)
WEIGHT_INITIALIZERS = _child(mmpretrain_registry.WEIGHT_INITIALIZERS)
BATCH_AUGMENTS = _child(mmpretrain_registry.BATCH_AUGMENTS)
TASK_UTILS = _child(mmpretrain_registry.TASK_UTILS)
METRICS = _child(mmpretrain_registry.METRICS)
EVALUATORS = _child(mmpretrain_registry.EVALUATORS)
VISUALIZERS = _child(mmpretrain_registry.VISUALIZERS)
VISBACKENDS = _child(mmpretrain_registry.VISBACKENDS)
