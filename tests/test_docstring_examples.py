"""The Example sections of the package's docstrings run as written (the
ones that need a trained file are marked ``+SKIP``)."""
import doctest
import importlib
import pkgutil

import pytest

import mmbireal
from mmbireal.registry import BINARIZERS

MODULES = sorted(
    info.name for info in pkgutil.walk_packages(mmbireal.__path__,
                                                'mmbireal.'))


@pytest.mark.parametrize('name', MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    registered = dict(BINARIZERS.module_dict)
    try:
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS,
                                 verbose=False, report=False)
    finally:  # the binarizer registered by an example is the example's
        BINARIZERS.module_dict.clear()
        BINARIZERS.module_dict.update(registered)
    assert result.failed == 0, f'{result.failed} failing example(s) in {name}'
