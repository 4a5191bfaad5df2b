"""The Example sections of the package's docstrings run as written (the
ones that need a trained file are marked ``+SKIP``)."""
import doctest
import importlib
import inspect
import pkgutil

import pytest

import mmbireal
from mmbireal.registry import BINARIZERS


def _modules_with_examples() -> list:
    names = []
    for info in pkgutil.walk_packages(mmbireal.__path__, 'mmbireal.'):
        if '>>> ' in inspect.getsource(importlib.import_module(info.name)):
            names.append(info.name)
    return sorted(names)


MODULES = _modules_with_examples()


def test_the_package_has_examples():
    assert len(MODULES) >= 15, MODULES


@pytest.mark.parametrize('name', MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    lines = [line for line in inspect.getsource(module).splitlines()
             if line.lstrip().startswith('>>> ')]
    skipped = sum('doctest: +SKIP' in line for line in lines)
    registered = dict(BINARIZERS.module_dict)
    try:
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS,
                                 verbose=False, report=False)
    finally:  # the binarizer registered by an example is the example's
        BINARIZERS.module_dict.clear()
        BINARIZERS.module_dict.update(registered)
    assert result.failed == 0, f'{result.failed} failing example(s) in {name}'
    # every example in the source ran: none was lost to doctest's finder
    # (e.g. a docstring it does not reach)
    assert result.attempted == len(lines) - skipped, name
