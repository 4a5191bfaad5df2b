"""Packaging for mmbireal, following MMPretrain's setup.py conventions.

* Requirements come from ``requirements/*.txt`` (``install_requires`` from
  ``runtime.txt``; extras ``tests``, ``mim``, ``all``, ``convert`` (h5py,
  for the larq-zoo converter) and ``bench``, the peer runtimes of the
  deployment benchmark, which ``all`` leaves out).
* MIM support: ``mim train mmbireal <config>.py`` looks for
  ``<installed mmbireal>/.mim/{configs,tools,model-index.yml}``.

  - Regular builds (wheel, ``pip install .``): ``build_py`` copies the repo's
    ``configs/``, ``tools/`` and ``model-index.yml`` into
    ``<build_lib>/mmbireal/.mim``, so the wheel carries them as package data.
    The source tree is not touched.
  - Editable builds (PEP 660 ``editable_wheel`` and the legacy ``develop``):
    ``mmbireal/.mim/*`` are created as relative symlinks to the repo's
    folders (git-ignored), so edits show up at once.

  A PEP 660 editable install alone is not enough for MIM: mim (and mmengine's
  ``pkg::`` config paths) locate the package as
  ``pkg_resources.get_distribution(pkg).location + '/mmbireal'``, which is
  ``site-packages/mmbireal`` and does not exist for an editable install.
  :func:`link_editable_install` (run by ``tools/setup_env.sh``, or by hand
  after ``pip install -e .``) makes ``site-packages/mmbireal`` a symlink to
  the checkout's package and records it in the distribution's RECORD so
  that ``pip uninstall`` / reinstalls remove it.

This file is import-safe (``setup()`` only runs as ``__main__``).
"""
import os
import os.path as osp
import re
import shutil

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

try:  # setuptools >= 64 (PEP 660)
    from setuptools.command.editable_wheel import editable_wheel
except ImportError:  # pragma: no cover - very old setuptools
    editable_wheel = None
try:  # deprecated; since setuptools 80 it just calls `pip install -e .`
    from setuptools.command.develop import develop
except ImportError:  # pragma: no cover
    develop = None

REPO_ROOT = osp.dirname(osp.abspath(__file__))
PACKAGE = 'mmbireal'
VERSION_FILE = osp.join(REPO_ROOT, PACKAGE, 'version.py')
# Repo entries exposed to MIM under <package>/.mim (MMPretrain uses the same
# names; missing optional entries such as model-index.yml are skipped).
MIM_ENTRIES = ('configs', 'tools', 'model-index.yml')
MIM_DIR = osp.join(REPO_ROOT, PACKAGE, '.mim')
_COPY_IGNORE = shutil.ignore_patterns('__pycache__', '*.pyc', '*.pyo')


def readme():
    path = osp.join(REPO_ROOT, 'README.md')
    if not osp.exists(path):
        return ''
    with open(path, encoding='utf-8') as f:
        return f.read()


def get_version():
    """Read ``__version__`` from ``mmbireal/version.py`` without importing
    the package (which would import torch)."""
    scope = {}
    with open(VERSION_FILE, encoding='utf-8') as f:
        exec(compile(f.read(), VERSION_FILE, 'exec'), scope)
    return scope['__version__']


def parse_requirements(fname, with_version=True):
    """Parse a pip requirements file into a list of requirement strings.

    Like MMPretrain's helper: comments and blank lines are dropped, ``-r
    other.txt`` includes are followed (relative to the including file) and
    ``with_version=False`` strips version specifiers. Environment markers
    (``; python_version < "3.9"``) are kept.
    """
    path = fname if osp.isabs(fname) else osp.join(REPO_ROOT, fname)
    requirements = []
    with open(path, encoding='utf-8') as f:
        for raw in f:
            line = raw.split('#', 1)[0].strip()
            if not line:
                continue
            if line.startswith(('-r ', '--requirement ')):
                target = line.split(None, 1)[1].strip()
                requirements.extend(
                    parse_requirements(
                        osp.join(osp.dirname(path), target), with_version))
                continue
            if line.startswith('-'):
                # -c/-e/--index-url ... have no meaning in install_requires
                continue
            if not with_version:
                spec, sep, marker = line.partition(';')
                name = re.match(r'[A-Za-z0-9][A-Za-z0-9._-]*(\[[^\]]*\])?',
                                spec.strip())
                line = name.group(0) + (f';{marker}' if sep else '')
            if line not in requirements:
                requirements.append(line)
    return requirements


def _remove(path):
    if osp.islink(path) or osp.isfile(path):
        os.remove(path)
    elif osp.isdir(path):
        shutil.rmtree(path)


def add_mim_extension(mode, target_dir=MIM_DIR, repo_root=REPO_ROOT):
    """Populate ``<package>/.mim`` for MIM.

    Args:
        mode (str): ``'symlink'`` (relative links into ``repo_root``, used for
            editable installs) or ``'copy'`` (real copies, used for wheels).
        target_dir (str): the ``.mim`` directory to fill.
        repo_root (str): where ``configs/``, ``tools/`` ... live.

    Returns:
        list[str]: the entries created.
    """
    if mode not in ('symlink', 'copy'):
        raise ValueError(f'invalid mode {mode!r}')
    if mode == 'symlink' and os.name == 'nt':  # no symlinks without privileges
        mode = 'copy'
    os.makedirs(target_dir, exist_ok=True)
    created = []
    for entry in MIM_ENTRIES:
        src = osp.join(repo_root, entry)
        dst = osp.join(target_dir, entry)
        if not osp.exists(src):
            # stale link or copy of an entry that no longer exists
            _remove(dst)
            continue
        if mode == 'symlink':
            rel = osp.relpath(src, osp.dirname(dst))
            if osp.islink(dst) and os.readlink(dst) == rel:
                created.append(dst)
                continue
            _remove(dst)
            os.symlink(rel, dst)
        else:
            _remove(dst)
            if osp.isdir(src):
                shutil.copytree(src, dst, ignore=_COPY_IGNORE)
            else:
                shutil.copyfile(src, dst)
        created.append(dst)
    return created


class BuildPyWithMim(build_py):
    """``build_py`` that also places the MIM files into the built package."""

    def run(self):
        super().run()
        if getattr(self, 'editable_mode', False):
            return  # editable builds link to the source tree instead
        add_mim_extension(
            'copy', target_dir=osp.join(self.build_lib, PACKAGE, '.mim'))


cmdclass = {'build_py': BuildPyWithMim}

if editable_wheel is not None:

    class EditableWheelWithMim(editable_wheel):
        """PEP 660 editable build: link ``mmbireal/.mim`` to the repo."""

        def run(self):
            add_mim_extension('symlink')
            super().run()

    cmdclass['editable_wheel'] = EditableWheelWithMim

if develop is not None:

    class DevelopWithMim(develop):
        """Legacy ``setup.py develop`` (old setuptools): same links."""

        def run(self):
            add_mim_extension('symlink')
            super().run()

    cmdclass['develop'] = DevelopWithMim


def link_editable_install(site_packages=None, repo_root=REPO_ROOT):
    """Make MIM find an editable (PEP 660) install of this checkout.

    Creates ``<site-packages>/mmbireal -> <repo_root>/mmbireal`` (plus the
    ``.mim`` links in the checkout) and appends the link to the installed
    distribution's RECORD, so ``pip uninstall mmbireal`` and any reinstall
    remove it before touching the directory (pip treats symlinks as files and
    never follows them on uninstall).

    Imports are unaffected: the link resolves to the same files the editable
    finder maps ``mmbireal`` to.

    Args:
        site_packages (str, optional): the purelib dir of the environment;
            defaults to the running interpreter's.
        repo_root (str): the checkout that is installed in editable mode.

    Returns:
        str: the path of the link.
    """
    import json
    import sysconfig
    from importlib import metadata
    from pathlib import Path
    from urllib.parse import unquote, urlparse

    site_packages = site_packages or sysconfig.get_paths()['purelib']
    dist_info = None
    for name in sorted(os.listdir(site_packages)):
        if re.fullmatch(rf'{PACKAGE}-[^-]+\.dist-info', name, re.IGNORECASE):
            dist_info = osp.join(site_packages, name)
            break
    if dist_info is None:
        raise RuntimeError(f'{PACKAGE} is not installed in {site_packages}')
    dist = metadata.PathDistribution(Path(dist_info))
    direct_url = json.loads(dist.read_text('direct_url.json') or '{}')
    if not direct_url.get('dir_info', {}).get('editable'):
        raise RuntimeError(f'{PACKAGE} in {site_packages} is not an editable '
                           'install; nothing to link')
    installed_src = osp.realpath(unquote(urlparse(direct_url['url']).path))
    if installed_src != osp.realpath(repo_root):
        raise RuntimeError(f'{PACKAGE} is installed in editable mode from '
                           f'{installed_src}, not from {repo_root}')

    add_mim_extension('symlink',
                      target_dir=osp.join(repo_root, PACKAGE, '.mim'),
                      repo_root=repo_root)
    link = osp.join(site_packages, PACKAGE)
    target = osp.join(osp.realpath(repo_root), PACKAGE)
    if osp.islink(link):
        if os.readlink(link) != target:
            os.remove(link)
    elif osp.exists(link):
        raise RuntimeError(f'{link} exists and is not a symlink; refusing to '
                           'replace it (stale non-editable install?)')
    if not osp.islink(link):
        os.symlink(target, link)

    # Register the link in RECORD (path relative to site-packages, no hash,
    # like RECORD's own row) so pip removes it together with the dist.
    record = osp.join(dist_info, 'RECORD')
    with open(record, encoding='utf-8') as f:
        content = f.read()
    if not any(row.split(',', 1)[0] == PACKAGE
               for row in content.splitlines()):
        with open(record, 'a', encoding='utf-8') as f:
            if content and not content.endswith('\n'):
                f.write('\n')
            f.write(f'{PACKAGE},,\n')
    return link


if __name__ == '__main__':
    setup(
        name=PACKAGE,
        version=get_version(),
        description='Bi-Real Net 1-bit CNNs as an MMPretrain plugin',
        long_description=readme(),
        long_description_content_type='text/markdown',
        keywords='binary neural networks, 1-bit CNN, Bi-Real Net, mmpretrain',
        license='Apache License 2.0',
        packages=find_packages(include=(PACKAGE, f'{PACKAGE}.*')),
        include_package_data=True,
        python_requires='>=3.8',
        classifiers=[
            'License :: OSI Approved :: Apache Software License',
            'Programming Language :: Python :: 3',
            'Operating System :: OS Independent',
            'Topic :: Scientific/Engineering :: Artificial Intelligence',
        ],
        install_requires=parse_requirements('requirements/runtime.txt'),
        extras_require={
            'all': parse_requirements('requirements.txt'),
            'tests': parse_requirements('requirements/tests.txt'),
            'mim': parse_requirements('requirements/mminstall.txt'),
            'bench': parse_requirements('requirements/bench.txt'),
            'convert': parse_requirements('requirements/convert.txt'),
        },
        cmdclass=cmdclass,
        zip_safe=False,
    )
