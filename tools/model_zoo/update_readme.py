"""Write the results table of configs/birealnet/README.md from metafile.yml.

The metafile is the one source of the model zoo's figures; the README table
is generated from it so the two cannot drift apart (tests run ``--check``).

    python tools/model_zoo/update_readme.py          # rewrite the table
    python tools/model_zoo/update_readme.py --check  # exit 2 if outdated

``--metafile`` and ``--readme`` point it at another package's zoo.
"""
import argparse
import os.path as osp
import re
from typing import List

import yaml

from mmbireal.utils.launch import fail

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
METAFILE = osp.join(REPO, 'configs', 'birealnet', 'metafile.yml')
README = osp.join(REPO, 'configs', 'birealnet', 'README.md')
START = '<!-- model-zoo-table:start (generated from metafile.yml) -->'
END = '<!-- model-zoo-table:end -->'
STAR = '\\*'  # a literal * in markdown
# suffixes of the metrics that are others' figures (the paper's, the
# ReActNet authors', larq-zoo's evaluation of its weights), not this code's
FOREIGN = (' (paper)', ' (authors)', ' (larq-zoo)')


def _number(value, scale: float, digits: int) -> str:
    """``value / scale`` with ``digits`` decimals, or two significant
    digits where those decimals would round a non-zero value to 0."""
    if value is None:
        return '-'
    scaled = value / scale
    if 0 < abs(scaled) < 0.5 * 10**-digits:
        return f'{scaled:.2g}'
    return f'{scaled:.{digits}f}'


def _accuracy(metrics: dict, name: str, mark: str) -> str:
    """A measured metric (``mean +- std (n = Seeds)`` where ``'<name>
    std'`` and ``Seeds`` are given), else another's (``'<name> (paper)'``,
    ``'<name> (larq-zoo)'``) marked as such, else '-'."""
    if metrics.get(name) is not None:
        # measured figures keep two decimals (YAML drops trailing zeros)
        value = f'{metrics[name]:.2f}' if 'Seeds' in metrics else \
            f'{metrics[name]}'
        if metrics.get(f'{name} std') is not None:
            value += f' +- {metrics[name + " std"]:.2f}'
        if metrics.get('Seeds') is not None:
            value += f" (n = {metrics['Seeds']})"
        return f'{value}{mark}'
    for suffix in FOREIGN:
        if metrics.get(f'{name}{suffix}') is not None:
            return f'{metrics[name + suffix]}{mark}{suffix}'
    return '-'


def zoo_root(metafile: str) -> str:
    """The folder that the metafile's paths are relative to: the nearest
    one above it holding ``model-index.yml`` (MIM's layout), else this
    repository."""
    folder = osp.dirname(osp.abspath(metafile))
    while not osp.isfile(osp.join(folder, 'model-index.yml')):
        if osp.dirname(folder) == folder:
            return REPO
        folder = osp.dirname(folder)
    return folder


def _download(model: dict, root: str, here: str) -> str:
    """Our weights (a URL, or a file in the repo with its size), or the
    file converted and its project (``Converted From``), else 'none'
    (``get_model(..., pretrained=True)`` then warns and keeps random
    weights)."""
    weights = model.get('Weights')
    if weights and '://' not in weights:  # in the repo, as configs are
        size = osp.getsize(osp.join(root, weights)) / 1e6
        return (f'[model, {size:.1f} MB]'
                f'({osp.relpath(osp.join(root, weights), here)})')
    if weights:
        return f'[model]({weights})'
    source = model.get('Converted From') or {}
    if source.get('Weights'):
        name = source['Weights'].rsplit('/', 1)[-1]
        code = f" ([source]({source['Code']}))" if source.get('Code') else ''
        return f"[{name}]({source['Weights']}){code}"
    return 'none'


def render_table(models: List[dict], root: str = REPO,
                 here: str = osp.dirname(README)) -> str:
    """One row per model; the Comment of a model becomes a footnote.
    ``root``: what the metafile's paths are relative to; ``here``: the
    README's folder, which the links are relative to."""
    lines = [
        '| Model | Params(M) | OPs(G) | Top-1 (%) | Top-5 (%) | Config '
        '| Download |',
        '| :---: | :-------: | :------: | :-------: | :-------: | :----: '
        '| :------: |',
    ]
    notes: List[str] = []
    for model in models:
        meta = model.get('Metadata', {})
        result = (model.get('Results') or [{}])[0]
        metrics = result.get('Metrics', {})
        mark = ''
        if model.get('Comment'):
            if model['Comment'] not in notes:
                notes.append(model['Comment'])
            mark = STAR * (notes.index(model['Comment']) + 1)
        top1 = _accuracy(metrics, 'Top 1 Accuracy', mark)
        top5 = _accuracy(metrics, 'Top 5 Accuracy', mark)
        config = model['Config']
        lines.append(
            f"| `{model['Name']}` ({result.get('Dataset', '-')}) "
            f"| {_number(meta.get('Parameters'), 1e6, 2)} "
            f"| {_number(meta.get('FLOPs'), 1e9, 3)} "
            f'| {top1} | {top5} '
            f'| [config]({osp.relpath(osp.join(root, config), here)}) '
            f'| {_download(model, root, here)} |')
    lines.append('')
    for i, note in enumerate(notes):
        lines.append(f'{STAR * (i + 1)} {note}  ')
    return '\n'.join(lines).rstrip()


def update(metafile: str = METAFILE, readme: str = README,
           check: bool = False) -> bool:
    """Rewrite the table of ``readme`` from ``metafile`` (``check``: only
    compare); True if it was up to date."""
    with open(metafile) as f:
        models = yaml.safe_load(f)['Models']
    with open(readme) as f:
        text = f.read()
    if START not in text or END not in text:
        fail(f'{readme} lacks the table markers {START!r}')
    table = render_table(models, zoo_root(metafile),
                         osp.dirname(osp.abspath(readme)))
    updated = re.sub(
        f'{re.escape(START)}.*{re.escape(END)}',
        lambda _: f'{START}\n\n{table}\n\n{END}',
        text, flags=re.S)
    if updated != text and not check:
        with open(readme, 'w') as f:
            f.write(updated)
    return updated == text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--check', action='store_true',
                        help='only check that README.md is up to date')
    parser.add_argument('--metafile', default=METAFILE,
                        help='the model zoo metafile (default: %(default)s)')
    parser.add_argument('--readme', default=README,
                        help='the README whose table is written '
                        '(default: %(default)s)')
    args = parser.parse_args()
    for name in ('metafile', 'readme'):
        if not osp.isfile(getattr(args, name)):
            fail(f'--{name} {getattr(args, name)}: no such file')
    if not update(args.metafile, args.readme, args.check) and args.check:
        fail(f'{args.readme} is out of date with {args.metafile}; run '
             'python tools/model_zoo/update_readme.py')


if __name__ == '__main__':
    main()
