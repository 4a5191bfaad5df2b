"""Small native libraries: compiled on first use, cached, loaded by ctypes.

mmbireal's C++ kernels (the deployment engine and the training-time
binarization kernels) are single source files compiled with the system
C++ compiler into a shared library under ``~/.cache/mmbireal/<kind>/`` and
called through ctypes on contiguous tensors' data pointers. Going through
ctypes rather than a torch extension keeps a build to about a second and
needs neither ninja nor the torch headers. A library is keyed by a hash of
its source, the compiler, the flags and the CPU's feature flags, so a cache
shared between machines never hands one CPU code built for another.

Every library exports ``int mmb_abi_version()``, checked on load. The
libraries link ``libgomp.so.1``; torch's wheel ships and loads that same
soname first, so they share torch's OpenMP runtime and thread pool instead
of starting a second one.

A default install needs no compiler: :class:`LazyLibrary` returns None
after a one-line warning when the build fails, and callers fall back to
PyTorch ops.
"""
import ctypes
import hashlib
import os
import os.path as osp
import shlex
import shutil
import subprocess
import threading
import warnings
from typing import (
    Callable,
    FrozenSet,
    Generic,
    List,
    Optional,
    Sequence,
    Tuple,
    TypeVar,
)

from .errors import InputError
from .paths import file_sha256

BASE_FLAGS = [
    '-O3', '-fopenmp', '-ffp-contract=off', '-fPIC', '-shared', '-std=c++17'
]


class NativeBuildError(RuntimeError):
    """A native library could not be compiled or loaded."""


def cpu_flags() -> FrozenSet[str]:
    """The CPU's features from /proc/cpuinfo: ``flags`` on x86,
    ``Features`` on ARM (empty where there is neither)."""
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith(('flags', 'Features')):
                    return frozenset(line.split(':', 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cache_dir(kind: str) -> str:
    """Where compiled libraries of one kind are kept
    (``$MMBIREAL_CACHE_DIR/<kind>``, default ``~/.cache/mmbireal/<kind>``).
    """
    root = os.environ.get('MMBIREAL_CACHE_DIR') or osp.join(
        osp.expanduser('~'), '.cache', 'mmbireal')
    return osp.join(root, kind)


def _first_error_line(text: str) -> str:
    for line in text.splitlines():
        if 'error' in line.lower():
            return line.strip()
    lines = text.strip().splitlines()
    return lines[0].strip() if lines else 'no output'


def _compile(cxx: List[str], flags: List[str], source: str,
             out: str) -> None:
    # per process and thread: concurrent builders never share a file
    tmp = f'{out}.tmp{os.getpid()}-{threading.get_ident()}'
    cmd = [*cxx, *flags, source, '-o', tmp]
    try:
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True,
                                  timeout=300)
        except (OSError, subprocess.SubprocessError) as e:
            raise NativeBuildError(f'{cxx[0]}: {e}') from None
        if proc.returncode != 0:
            raise NativeBuildError(
                f'{cxx[0]} failed: {_first_error_line(proc.stderr)}')
        with open(tmp, 'rb') as f:  # on disk before it has its name
            os.fsync(f.fileno())
        # the digest a later load checks: a cached library damaged after
        # this (a full disk, a crash) is rebuilt, not loaded
        with open(f'{tmp}.sha256', 'w') as f:
            f.write(file_sha256(tmp))
        os.replace(f'{tmp}.sha256', f'{out}.sha256')
        os.replace(tmp, out)  # atomic: others never see half a file
    finally:
        for leftover in (tmp, f'{tmp}.sha256'):
            if osp.exists(leftover):
                os.remove(leftover)


def _intact(path: str) -> bool:
    """Whether a cached library is the file its build wrote."""
    try:
        with open(f'{path}.sha256') as f:
            return f.read().strip() == file_sha256(path)
    except OSError:
        return False


def _load(path: str, abi_version: int) -> ctypes.CDLL:
    try:
        lib = ctypes.CDLL(path)
    except OSError as e:
        raise NativeBuildError(f'cannot load {path}: {e}') from None
    lib.mmb_abi_version.restype = ctypes.c_int
    if lib.mmb_abi_version() != abi_version:
        raise NativeBuildError(f'{path}: ABI version mismatch')
    return lib


def build_library(source: str,
                  abi_version: int,
                  directory: str,
                  cxx: Optional[str] = None,
                  depends: Sequence[str] = ()
                  ) -> Tuple[ctypes.CDLL, str, List[str]]:
    """Compile ``source`` (or reuse a cached build) and load it.

    Args:
        source: The C++ file.
        abi_version: What its ``mmb_abi_version()`` must return.
        directory: The cache directory (see :func:`cache_dir`).
        cxx: The C++ compiler; default ``$CXX`` or ``g++``.
        depends: The headers ``source`` includes; their text is part of
            the cache key, so editing one rebuilds the library.

    Returns:
        ``(library, path, flags)``.

    Raises:
        NativeBuildError: no compiler, a failed build or a library that
            does not load.
    """
    cxx = cxx or os.environ.get('CXX') or 'g++'
    words = shlex.split(cxx)  # e.g. CXX='ccache g++'
    if not words or shutil.which(words[0]) is None:
        raise NativeBuildError(f'no C++ compiler {cxx!r} found')
    if not osp.isfile(source):
        raise NativeBuildError(f'source {source} is missing')
    try:
        version = subprocess.run([*words, '--version'], capture_output=True,
                                 text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError) as e:
        raise NativeBuildError(f'{cxx}: {e}') from None
    text = b''
    for name in (source, *depends):
        with open(name, 'rb') as f:
            text += f.read() + b'\0'
    stem = osp.splitext(osp.basename(source))[0]
    # -march=native first (the point of a local build); a compiler that
    # refuses it still gets portable code.
    errors = []
    for flags in (['-march=native', *BASE_FLAGS], BASE_FLAGS):
        key = hashlib.sha256(b'\0'.join([
            text, ' '.join([cxx, *flags]).encode(), version.encode(),
            ' '.join(sorted(cpu_flags())).encode(),
            str(abi_version).encode()
        ])).hexdigest()[:16]
        path = osp.join(directory, f'{stem}-{key}.so')
        try:
            if not (osp.isfile(path) and _intact(path)):
                os.makedirs(directory, exist_ok=True)
                _compile(words, flags, source, path)
            return _load(path, abi_version), path, flags
        except (NativeBuildError, OSError) as e:
            errors.append(str(e).splitlines()[0] if str(e) else repr(e))
    raise NativeBuildError(errors[0])


T = TypeVar('T')


class LazyLibrary(Generic[T]):
    """A native library built on first :meth:`get`, at most once.

    Args:
        build: Builds and wraps the library; raises
            :class:`NativeBuildError` on failure.
        env_var: Setting this environment variable to ``torch`` skips the
            library (callers then use PyTorch ops).
        what: Names the library in the one-line warning.
        fallback: Says what happens instead, in the same warning.
    """

    def __init__(self, build: Callable[[], T], env_var: str, what: str,
                 fallback: str) -> None:
        self.build, self.env_var = build, env_var
        self.what, self.fallback = what, fallback
        self._lock = threading.Lock()
        self._value: Optional[T] = None
        self._tried = False

    def get(self) -> Optional[T]:
        """The library, or None if it is disabled or cannot be built."""
        if self._tried:  # the common case: no lock
            return self._value
        with self._lock:
            if not self._tried:
                if os.environ.get(self.env_var, '') != 'torch':
                    try:
                        self._value = self.build()
                    except NativeBuildError as e:
                        warnings.warn(
                            f'{self.what} unavailable ({e}); '
                            f'{self.fallback}', RuntimeWarning, stacklevel=3)
                self._tried = True
        return self._value

    def reset(self) -> None:
        """Forget the library; the next :meth:`get` decides again."""
        with self._lock:
            self._value, self._tried = None, False


#: The ``backend`` argument of the layers and models with native code.
BACKENDS = ('auto', 'native', 'torch')


def check_backend(backend: str, library: LazyLibrary) -> str:
    """Validate a ``backend`` argument for code that uses ``library``.

    ``'auto'``: the library where it applies, PyTorch ops elsewhere and
    after one warning when it cannot be built; ``'native'``: the same, but
    an error when it cannot be built; ``'torch'``: PyTorch ops. The
    library's environment variable set to ``torch`` overrides the first
    two (PyTorch ops, no error).

    Args:
        backend (str): One of :data:`BACKENDS`.
        library (LazyLibrary): The native library ``'native'`` asks for.

    Returns:
        str: ``backend``.

    Raises:
        InputError: an unknown backend, or ``'native'`` where the library
            cannot be built.
    """
    if not isinstance(backend, str) or backend not in BACKENDS:
        raise InputError(f'unknown backend {backend!r}; accepted: '
                         f'{", ".join(BACKENDS)}')
    if backend == 'native' and library.get() is None and \
            os.environ.get(library.env_var, '') != 'torch':
        raise InputError(f"backend 'native' needs the native library "
                         f'({library.what}), which is not available (see '
                         'the warning); accepted here: auto, torch')
    return backend
