"""Reading configs and explaining config mistakes in one line."""
import argparse
import difflib
import importlib.util
import inspect
import os
import os.path as osp
import re
from types import FrameType, TracebackType
from typing import Iterator, List, Optional

from mmengine.config import Config, DictAction

from .errors import InputError
from .paths import PACKAGE_PARENT


def resolve_config_path(path: str) -> str:
    """Turn ``'pkg::rel/path.py'`` into the installed package's
    ``.mim/configs/rel/path.py``; other paths are returned unchanged."""
    if '::' not in path:
        return path
    package, _, rel = path.partition('::')
    spec = importlib.util.find_spec(package) if package.isidentifier() \
        else None
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f'config {path}: package {package!r} is not installed')
    root = next(iter(spec.submodule_search_locations))
    return osp.join(root, '.mim', 'configs', rel)


def read_config(path: str) -> Config:
    """Read a config file; ``pkg::`` paths (e.g.
    ``'mmpretrain::resnet/resnet18_8xb32_in1k.py'``) are looked up in the
    installed package.

    Raises:
        FileNotFoundError: The file (or the package) does not exist.
    """
    resolved = resolve_config_path(path)
    if osp.isdir(resolved):
        raise FileNotFoundError(
            f'config {path} is a folder; accepted: a config file, e.g. '
            'configs/birealnet/bireal18_8xb16_in1k.py')
    if not osp.isfile(resolved):
        raise FileNotFoundError(f'config file {path} does not exist'
                                f'{_did_you_mean(path)}')
    return Config.fromfile(resolved)


def _did_you_mean(path: str) -> str:
    """'; did you mean X?' for a config of ours with about that name: as
    a path if our configs are under the current folder, else as
    ``mmbireal::birealnet/NAME.py``. Other packages' paths get none."""
    accepted = ('; accepted: a config file, e.g. configs/birealnet/'
                'bireal18_8xb16_in1k.py, or mmbireal::birealnet/NAME.py')
    if '::' in path and not path.startswith('mmbireal::'):
        return ''
    ours = osp.join(PACKAGE_PARENT, 'configs', 'birealnet')
    if not osp.isdir(ours):  # installed from a wheel: under .mim
        ours = resolve_config_path('mmbireal::birealnet')
    names = sorted(n for n in os.listdir(ours)
                   if n.endswith('.py')) if osp.isdir(ours) else []
    close = difflib.get_close_matches(osp.basename(path), names, n=1)
    if not close:
        return accepted
    here = osp.join('configs', 'birealnet', close[0])
    if osp.isfile(here):
        return f'; did you mean {here}?'
    return f'; did you mean mmbireal::birealnet/{close[0]}?'


class CfgOptionsAction(DictAction):
    """mmengine's ``--cfg-options`` parser with one-line errors.

    ``key=dict(...)`` values are refused (mmengine's parser does not read
    them and recurses until Python gives up); so are values it cannot
    parse, such as unbalanced brackets.
    """

    def __call__(self, parser, namespace, values, option_string=None):
        for item in values:
            key, equals, value = item.partition('=')
            if not equals:
                raise InputError(
                    f'{option_string}: {item!r} has no value; write '
                    f'key=value, e.g. {item}=X (lists as {item}="[a,b]")')
            if re.match(r'\s*dict\s*\(', value):
                raise InputError(
                    f'{option_string} {key}=dict(...) is not supported: '
                    'give each entry as its own key=value, e.g. '
                    f'{key}.type=X {key}.depth=18 (accepted values: numbers, '
                    'strings, True/False/None, [a,b] and (a,b))')
            if re.match(r'\s*[\[(].*\bdict\s*\(', value):  # [dict(type=X)]
                raise InputError(
                    f'{option_string} {key}=[dict(...)] is not supported: '
                    'dicts inside a list cannot be given on the command '
                    f'line; set them in a config file that inherits this '
                    f"one (_base_ = 'CONFIG', then {key} = [dict(...)]), "
                    f'or change an existing one as {key}.0.type=X')
        try:
            super().__call__(parser, namespace, values, option_string)
        # mmengine asserts on brackets it cannot pair
        except (AssertionError, RecursionError, ValueError):
            raise InputError(
                f'{option_string}: cannot parse {" ".join(values)!r}: '
                'write key=value pairs, with lists as key="[a,b]" and '
                'balanced brackets') from None


def add_cfg_options(parser: argparse.ArgumentParser) -> None:
    """The ``--cfg-options`` argument of the tools."""
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=CfgOptionsAction,
        help='override config entries, key=value (e.g. '
        'train_cfg.max_epochs=1 load_from=None; lists as key="[a,b]")')


_UNEXPECTED = re.compile(
    r"(\w+)\.__init__\(\) got an unexpected keyword argument '(\w+)'")


def _frames(error: BaseException) -> Iterator[FrameType]:
    """The frames of ``error``'s traceback and of the errors it
    happened in, innermost first."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        frames: List[FrameType] = []
        tb: Optional[TracebackType] = error.__traceback__
        while tb is not None:
            frames.append(tb.tb_frame)
            tb = tb.tb_next
        yield from reversed(frames)
        error = error.__cause__ or error.__context__


def _accepted_arguments(cls: type) -> List[str]:
    params = inspect.signature(cls).parameters.values()
    return [
        p.name for p in params
        if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]


def chain_arguments(cls: type, upto: Optional[str] = None) -> List[str]:
    """The keyword arguments ``cls`` takes: its own, and those of the
    parents it hands its ``**kwargs`` to (up to the class named ``upto``,
    else all that define ``__init__``), in that order."""
    chain = [c for c in cls.__mro__
             if '__init__' in vars(c) and c is not object]
    names = [c.__name__ for c in chain]
    if upto in names:
        chain = chain[:names.index(upto) + 1]
    return list(dict.fromkeys(arg for c in chain
                              for arg in _accepted_arguments(c)))


def unexpected_argument_message(error: TypeError) -> Optional[str]:
    """One line for a config entry that a registry-built class does not
    take (a typo such as ``model.backbone.depht=18``, or arguments left
    from another backbone after changing ``type``).

    Returns None unless ``error`` was raised by mmengine's registry
    building a class with a keyword argument it does not accept; other
    TypeErrors are bugs and keep their traceback.
    """
    match = _UNEXPECTED.search(str(error))
    if match is None:
        return None
    name, key = match.groups()
    for frame in _frames(error):
        filename = frame.f_code.co_filename.replace('\\', '/')
        if filename.endswith('mmengine/runner/runner.py') and \
                frame.f_code.co_name == 'build_dataloader' and \
                name == 'DataLoader':  # built by the runner, not a registry
            from torch.utils.data import DataLoader
            accepted = _accepted_arguments(DataLoader)
            return (f'a dataloader config does not take {key!r}; accepted: '
                    f'{", ".join(accepted)}')
        if not filename.endswith('mmengine/registry/build_functions.py'):
            continue
        cls = frame.f_locals.get('obj_cls')
        kwargs = frame.f_locals.get('args')
        if not inspect.isclass(cls):
            continue
        # the class built, or a parent it hands its **kwargs to
        names = [c.__name__ for c in cls.__mro__]
        if name not in names:
            continue
        accepted = chain_arguments(cls, name)
        unknown = [key]
        if isinstance(kwargs, dict):
            unknown = [k for k in kwargs if k not in accepted] or unknown
        listed = ', '.join(repr(k) for k in unknown)
        return (f'{cls.__name__} does not take the argument(s) {listed} '
                f'given in the config; accepted: {", ".join(accepted)}')
    return None


_NOT_REGISTERED = re.compile(
    r'(\S+) is not in the (?:(\w+)::)?(.+?) registry')


def _registered_names(scope: Optional[str], kind: str) -> List[str]:
    """The names ``scope``'s registry of ``kind`` (e.g. 'model', 'data
    sampler') and its parents hold; [] where it cannot be found."""
    from mmengine.registry import Registry
    try:
        module = importlib.import_module(f'{scope or "mmengine"}.registry')
    except Exception:  # noqa: BLE001 (a scope without such a module)
        return []
    registry = next((r for r in vars(module).values()
                     if isinstance(r, Registry) and r.name == kind
                     and r.scope == (scope or r.scope)), None)
    names: set = set()
    while registry is not None:  # e.g. MMPretrain's, then mmengine's
        names.update(registry.module_dict)
        registry = registry.parent
    return sorted(names)


def unknown_type_message(error: KeyError) -> Optional[str]:
    """One line for a config ``type`` that no registry holds (a typo such as
    ``type='BiRealNett'``), with the registered names closest to it.

    Returns None unless ``error`` is mmengine's registry lookup failure.
    """
    text = error.args[0] if error.args else ''
    match = _NOT_REGISTERED.match(text) if isinstance(text, str) else None
    if match is None:
        return None
    name, scope, kind = match.groups()
    names = _registered_names(scope, kind)
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
    where = f'{scope} {kind}' if scope else kind
    accepted = (f'closest registered: {", ".join(close)}' if close else
                f'{len(names)} names are registered' if names else
                'see the registry of the package that should provide it')
    return (f'type {name!r} in the config is not a registered {where}; '
            f'{accepted}')
