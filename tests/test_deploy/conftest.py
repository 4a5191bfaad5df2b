"""Fixtures shared by the deployment tests."""
import pytest
from helpers import native_library_or_skip

from mmbireal.deploy import engine


@pytest.fixture(scope='module')
def native():
    """The native engine; skipped only without a C++ compiler."""
    return native_library_or_skip(engine._engine)
