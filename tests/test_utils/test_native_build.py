"""The native-library cache: a damaged cached library is rebuilt, not
loaded, and $CXX may carry a wrapper (``ccache g++``)."""
import os
import shutil

import pytest

from mmbireal.utils.native import build_library

SOURCE = 'extern "C" int mmb_abi_version() { return 7; }\n'
needs_gxx = pytest.mark.skipif(shutil.which('g++') is None,
                               reason='no g++ here')


@pytest.fixture
def source(tmp_path):
    path = tmp_path / 'tiny.cpp'
    path.write_text(SOURCE)
    return str(path)


@needs_gxx
def test_a_damaged_cached_library_is_rebuilt(source, tmp_path):
    cache = str(tmp_path / 'cache')
    lib, path, _ = build_library(source, 7, cache, cxx='g++')
    assert lib.mmb_abi_version() == 7
    good = open(path, 'rb').read()
    # a half-written or overwritten file under the library's name (a new
    # file: the loaded one stays mapped)
    garbage = path + '.garbage'
    with open(garbage, 'wb') as f:
        f.write(good[:len(good) // 3])
    os.replace(garbage, path)
    _, again, _ = build_library(source, 7, cache, cxx='g++')
    assert again == path  # same key, so the same name, rebuilt
    assert open(path, 'rb').read() != good[:len(good) // 3]
    assert os.path.getsize(path) == len(good)
    assert sorted(os.listdir(cache)) == sorted(
        [os.path.basename(path), os.path.basename(path) + '.sha256'])


@needs_gxx
def test_cxx_may_be_a_wrapper_command(source, tmp_path):
    lib, _, _ = build_library(source, 7, str(tmp_path / 'cache'),
                              cxx='env g++')
    assert lib.mmb_abi_version() == 7
