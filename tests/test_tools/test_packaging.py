"""Packaging checks: version, MIM path resolution, requirements, pins.

These run against the *installed* mmbireal (tools/setup_env.sh installs the
checkout in editable mode and links it for MIM).
"""
import importlib
import importlib.util
import os
import os.path as osp
import re
import shutil
import subprocess
import sys
import warnings
import zipfile
from importlib import metadata

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG_REL = osp.join('birealnet', 'bireal18_8xb16_in1k.py')
CONFIG = osp.join(REPO, 'configs', CONFIG_REL)
TRAIN_SCRIPT = osp.join(REPO, 'tools', 'train.py')
MMCV_NAMES = {'mmcv', 'mmcv-lite', 'mmcv-full'}
# mim reloads pkg_resources, which warns that it is deprecated
QUIET_PKG_RESOURCES = pytest.mark.filterwarnings(
    'ignore:pkg_resources is deprecated:UserWarning',
    'ignore::DeprecationWarning')
LINK_HINT = ('run `bash tools/setup_env.sh` (or, after a manual '
             '`pip install -e .`: `python -c "import setup; '
             'setup.link_editable_install()"` in the repo root)')


def _load_setup():
    """Import the repo's setup.py as a module (it is import-safe)."""
    spec = importlib.util.spec_from_file_location('mmbireal_setup',
                                                  osp.join(REPO, 'setup.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _req_name(line):
    line = line.split('#', 1)[0].strip()
    m = re.match(r'[A-Za-z0-9][A-Za-z0-9._-]*', line)
    return re.sub(r'[-_.]+', '-', m.group(0)).lower() if m else None


def _import_quietly(name):
    # pkg_resources warns that it is deprecated; that is not what we test
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        return importlib.import_module(name)


def test_installed_version_matches_setup():
    import mmbireal

    expected = _load_setup().get_version()
    assert mmbireal.__version__ == expected
    # the installed metadata must not be stale either
    assert metadata.version('mmbireal') == expected


@QUIET_PKG_RESOURCES
def test_mim_finds_config_and_train_script():
    # the README's command: the config and the script must exist
    assert osp.isfile(CONFIG) and osp.isfile(TRAIN_SCRIPT)
    mim_utils = _import_quietly('mim.utils')

    root = mim_utils.get_installed_path('mmbireal')
    config_root = osp.join(root, '.mim', 'configs')
    assert osp.isfile(osp.join(config_root, CONFIG_REL)), (
        f'mim resolves mmbireal to {root}, which has no '
        f'.mim/configs/{CONFIG_REL}; {LINK_HINT}')
    # `mim train mmbireal bireal18_8xb16_in1k.py` searches by basename
    found = mim_utils.recursively_find(
        root, osp.basename(CONFIG), followlinks=True)
    assert len(found) == 1, found
    with open(found[0], 'rb') as a, open(CONFIG, 'rb') as b:
        assert a.read() == b.read()
    if osp.isfile(TRAIN_SCRIPT):
        assert osp.isfile(osp.join(root, '.mim', 'tools', 'train.py'))


@QUIET_PKG_RESOURCES
def test_a_user_config_inherits_ours_through_mmbireal_paths(
        tmp_path, fmnist_available):
    """`_base_ = 'mmbireal::...'`, as users inherit MMPretrain's configs
    (mmengine reads `pkg::` paths of the packages it lists only), read by
    our tools' config loader, builds a runner: what the base defines is
    scoped to mmbireal by mmengine, and built in MMPretrain's registries."""
    from mmengine.runner import Runner

    from mmbireal.utils.launch import load_config
    mine = tmp_path / 'my_bireal.py'
    mine.write_text(
        "_base_ = ['mmbireal::birealnet/bireal18_1xb64-quick_fmnist.py']\n"
        'train_dataloader = dict(batch_size=32)\n'
        f"work_dir = {str(tmp_path / 'work')!r}\n")
    cfg = load_config(str(mine))
    assert cfg.train_dataloader.batch_size == 32
    runner = Runner.from_cfg(cfg)
    assert type(runner.model.backbone).__name__ == 'BiRealNet'
    assert 'IterCheckpointHook' in [type(h).__name__ for h in runner.hooks]
    loop = runner.build_train_loop(cfg.train_cfg)
    assert type(loop).__name__ == 'ResumableEpochBasedTrainLoop'
    mine.write_text("_base_ = 'mmbireal::_base_/models/bireal18.py'\n")
    assert load_config(str(mine)).model.backbone.depth == 18


@QUIET_PKG_RESOURCES
def test_mim_train_command(monkeypatch):
    """Run mim's own `train` up to the subprocess call, which is captured."""
    train_mod = _import_quietly('mim.commands.train')
    calls = []

    def fake_check_call(cmd, **kwargs):
        calls.append(cmd)
        return 0

    monkeypatch.setattr(train_mod.subprocess, 'check_call', fake_check_call)
    monkeypatch.setattr(train_mod.subprocess, 'check_output',
                        lambda cmd, **kwargs: b'usage: train.py config')
    ok, msg = train_mod.train(
        package='mmbireal',
        config=osp.basename(CONFIG),
        gpus=0,
        yes=True,
        other_args=('--work-dir', 'work_dirs/x'))
    assert ok, msg
    (cmd, ) = calls
    script, config = cmd[1], cmd[2]
    assert osp.samefile(config, CONFIG), cmd
    with open(script, 'rb') as a, open(TRAIN_SCRIPT, 'rb') as b:
        assert a.read() == b.read(), cmd
    assert cmd[3:] == ['--launcher', 'none', '--work-dir', 'work_dirs/x'], cmd


def test_runtime_requirements_do_not_name_mmcv():
    with open(osp.join(REPO, 'requirements', 'runtime.txt')) as f:
        names = {_req_name(line) for line in f} - {None}
    assert names, 'requirements/runtime.txt is empty'
    assert not names & MMCV_NAMES, names
    # the installed metadata (install_requires without extras) agrees
    hard = {
        _req_name(req)
        for req in metadata.requires('mmbireal') or [] if 'extra ==' not in req
    }
    assert not hard & MMCV_NAMES, hard
    mim_extra = _load_setup().parse_requirements('requirements/mminstall.txt')
    assert {_req_name(r) for r in mim_extra} >= {'mmcv', 'mmengine'}


@QUIET_PKG_RESOURCES
def test_pkg_resources_available():
    pkg_resources = _import_quietly('pkg_resources')
    assert pkg_resources.get_distribution('mmbireal').version
    major = int(metadata.version('setuptools').split('.')[0])
    assert major < 82, 'setuptools >= 82 has no pkg_resources; see ' \
        'requirements/constraints.txt'


@pytest.mark.slow  # builds a wheel in a subprocess
def test_wheel_ships_mim_files(tmp_path):
    """A regular (non-editable) wheel carries .mim/{configs,tools}."""
    # build from a copy of what the build reads: pip builds in-tree and
    # would leave build/ and *.egg-info behind
    src = tmp_path / 'src'
    src.mkdir()
    ignore = shutil.ignore_patterns('__pycache__', '*.py[cod]', '.mim')
    for entry in ('setup.py', 'MANIFEST.in', 'README.md', 'LICENSE',
                  'requirements.txt', 'model-index.yml', 'requirements',
                  'configs', 'tools', 'mmbireal'):
        path = osp.join(REPO, entry)
        if osp.isdir(path):
            shutil.copytree(path, src / entry, ignore=ignore)
        elif osp.isfile(path):
            shutil.copy(path, src / entry)
    env = dict(os.environ, PIP_NO_INPUT='1', PIP_DISABLE_PIP_VERSION_CHECK='1')
    subprocess.run([
        sys.executable, '-m', 'pip', 'wheel', '-q', '--no-deps',
        '--no-build-isolation', '--use-pep517', '--no-cache-dir', '-w',
        str(tmp_path / 'dist'),
        str(src)
    ],
                   check=True,
                   env=env)
    (wheel, ) = (tmp_path / 'dist').glob('mmbireal-*.whl')
    names = set(zipfile.ZipFile(wheel).namelist())
    assert f'mmbireal/.mim/configs/{CONFIG_REL}' in names
    if osp.isfile(TRAIN_SCRIPT):
        assert 'mmbireal/.mim/tools/train.py' in names
    assert not any('__pycache__' in n for n in names)
    # the model zoo's own weights, where the wheel's model index points
    assert any(n.startswith('mmbireal/.mim/configs/birealnet/weights/')
               and n.endswith('.bin.pth') for n in names)
    # the native sources compiled on first use
    assert {'mmbireal/deploy/csrc/binconv.cpp',
            'mmbireal/models/csrc/binarize.cpp'} <= names
    # the license text, and the license in the metadata
    (license_file, ) = [n for n in names if n.endswith('.dist-info/LICENSE')
                        or '.dist-info/licenses/LICENSE' in n]
    with zipfile.ZipFile(wheel) as archive:
        text = archive.read(license_file).decode()
        (meta, ) = [n for n in names if n.endswith('.dist-info/METADATA')]
        metadata_text = archive.read(meta).decode()
    assert 'Apache License' in text and 'Version 2.0, January 2004' in text
    assert 'License: Apache License 2.0' in metadata_text
    assert 'Classifier: License :: OSI Approved :: Apache Software ' \
        'License' in metadata_text
