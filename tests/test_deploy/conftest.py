"""Fixtures shared by the deployment tests."""
import pytest

from mmbireal.deploy import get_engine


@pytest.fixture(scope='module')
def native():
    """The native engine; the test is skipped where it cannot be built."""
    eng = get_engine()
    if eng is None:
        pytest.skip('the binary conv engine cannot be built here')
    return eng
