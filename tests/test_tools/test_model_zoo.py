"""The model zoo: MMPretrain finds our models, and its figures are ours."""
import os.path as osp
import re
import sys

import numpy as np
import pytest
import torch
import yaml
from helpers import REPO, counted, import_tool_file, run_tool

import mmbireal  # noqa: F401 (registers the model index)
from mmbireal.utils import load_checkpoint_file

with open(osp.join(REPO, 'configs', 'birealnet', 'metafile.yml')) as f:
    MODELS = yaml.safe_load(f)['Models']


def test_mmpretrain_finds_our_models():
    import mmpretrain
    names = mmpretrain.list_models('*bireal*')
    assert {'bireal18_8xb16_in1k', 'bireal34_8xb128_in1k'} <= set(names)
    model = mmpretrain.get_model('bireal18_8xb16_in1k')
    assert type(model.backbone).__name__ == 'BiRealNet'
    assert model.backbone.depth == 18


def test_inferencer_runs_a_zoo_model_with_its_shipped_weights():
    """MMPretrain's inferencer loads the shipped packed file as the float
    model: its scores are the packed engine's on the same image (random
    weights would give others)."""
    from mmpretrain import ImageClassificationInferencer

    from mmbireal.deploy import load_packed
    name = 'bireal18-rsign-rprelu_step2_1xb64_fmnist'
    inferencer = ImageClassificationInferencer(name, pretrained=True,
                                               device='cpu')
    image = np.random.default_rng(0).integers(0, 256, (28, 28), np.uint8)
    result = inferencer(image)[0]
    scores = np.asarray(result['pred_scores'])
    assert len(scores) == 10 and result['pred_label'] == scores.argmax()
    packed = load_packed(name, backend='torch').classify([image], topk=10)[0]
    engine = np.zeros(10)
    for p in packed:
        engine[p.index] = p.score
    assert np.abs(scores - engine).max() < 1e-3
    assert result['pred_class'] == packed[0].name


SHIPPED = [m for m in MODELS if m.get('Weights') and '://' not in m['Weights']]


@pytest.mark.parametrize('model', SHIPPED, ids=lambda m: m['Name'])
def test_shipped_weights_are_trained_and_load_as_pretrained(
        model, fmnist_available):
    """get_model(pretrained=True) finds the file in the repo, the float
    model it builds agrees with the packed engine, and both classify real
    test images as a trained model does."""
    import hashlib

    import mmpretrain

    from mmbireal.datasets import LocalFashionMNIST
    from mmbireal.deploy import load_packed
    path = osp.join(REPO, model['Weights'])
    with open(path, 'rb') as f:  # the name holds the file's digest
        assert hashlib.sha256(f.read()).hexdigest()[:8] in path
    test_set = LocalFashionMNIST(split='test', lazy_init=False)
    samples = [test_set.get_data_info(i) for i in range(200)]
    images = [s['img'] for s in samples]
    labels = np.array([s['gt_label'] for s in samples])
    float_model = mmpretrain.get_model(model['Name'], pretrained=True)
    inferencer = mmpretrain.ImageClassificationInferencer(
        float_model, device='cpu')
    by_float = np.array(
        [r['pred_label'] for r in inferencer(images, batch_size=100)])
    by_packed = np.array(  # load_packed finds the file by the name too
        [p[0].index for p in load_packed(model['Name']).classify(
            images, topk=1)])
    assert (by_float == by_packed).mean() >= 0.99  # signs at zero may flip
    top1 = model['Results'][0]['Metrics']['Top 1 Accuracy']
    # 200 images: within 5 points of the 10,000-image figure
    assert abs((by_packed == labels).mean() * 100 - top1) <= 5


def test_load_packed_names_the_shipped_models_when_given_neither():
    from mmbireal.deploy import load_packed
    names = [m['Name'] for m in SHIPPED]
    with pytest.raises(FileNotFoundError) as error:
        load_packed('bireal18-no-such-model')
    assert str(error.value) == (
        'bireal18-no-such-model: no such file, nor the name of a '
        f'model-zoo entry with shipped weights ({", ".join(sorted(names))})')
    # names in any case, as MMPretrain's get_model takes them
    assert load_packed(names[0].upper(), backend='torch').source == \
        load_packed(names[0], backend='torch').source


@pytest.mark.parametrize('model', MODELS, ids=lambda m: m['Name'])
def test_metafile_figures_come_from_get_flops(model):
    side = 28 if 'fmnist' in model['Name'] else 224
    measured = counted(model['Config'], side)
    assert model['Metadata']['Parameters'] == measured.params
    assert model['Metadata']['FLOPs'] == round(measured.ops)
    assert osp.isfile(osp.join(REPO, model['Config']))


def test_paper_figures_are_marked_where_mim_shows_them():
    """No ImageNet run of this code exists: every ImageNet metric is the
    paper's, the ReActNet authors' or larq-zoo's, and `mim search`, the
    metafile and the README say so."""
    foreign = (' (paper)', ' (authors)', ' (larq-zoo)')
    from mim.commands.search import convert2df
    from modelindex.load_model_index import load
    table = convert2df(load(osp.join(REPO, 'model-index.yml')))
    for model in MODELS:
        metrics = model['Results'][0]['Metrics']
        paper = model['Results'][0]['Dataset'] == 'ImageNet-1k'
        assert all(k.endswith(foreign) == paper for k in metrics), model
        shown = table.loc[model['Name']].dropna().to_dict()
        columns = [c for c in shown if 'accuracy' in c]
        assert columns and all(
            c.endswith(tuple(f.replace(' ', '_') for f in foreign)) == paper
            for c in columns), columns
    with open(osp.join(REPO, 'configs', 'birealnet', 'README.md')) as f:
        rows = [line for line in f if line.startswith('| `bireal')]
    assert all(any(f in row for f in foreign) == ('ImageNet' in row)
               for row in rows)


def test_the_readme_mim_sort_ranks_our_measured_models():
    """The column the README sorts by exists, holds only this code's own
    results, and mim ranks by it (a partial name such as `top_1` is
    ambiguous to mim by design)."""
    from mim.commands.search import convert2df, sort_by
    from modelindex.load_model_index import load
    with open(osp.join(REPO, 'README.md')) as f:
        field = re.search(r'`mim search mmbireal --sort (\S+)`', f.read())[1]
    table = convert2df(load(osp.join(REPO, 'model-index.yml')))
    ranked = sort_by(table, [field], ascending=False)[field].dropna()
    ours = {m['Name'] for m in MODELS
            if m['Results'][0]['Dataset'] != 'ImageNet-1k'}
    assert set(ranked.index) == ours
    assert list(ranked) == sorted(ranked, reverse=True)
    with pytest.raises(ValueError):
        sort_by(table, ['top_1'])


def test_readme_table_shows_the_spread_over_seeds():
    tool = import_tool_file('tools', 'model_zoo', 'update_readme.py')
    metrics = [{'Top 1 Accuracy': 81.33, 'Top 1 Accuracy std': 1.53,
                'Seeds': 3}, {'Top 1 Accuracy': 79.08, 'Seeds': 1},
               {'Top 1 Accuracy (paper)': 56.4}]
    table = tool.render_table([
        dict(Name=f'm{i}', Config='configs/birealnet/m.py',
             Results=[dict(Dataset='D', Metrics=m)])
        for i, m in enumerate(metrics)])
    cells = [row.split(' | ')[3] for row in table.splitlines()[2:5]]
    assert cells == ['81.33 +- 1.53 (n = 3)', '79.08 (n = 1)',
                     '56.4 (paper)']


def test_readme_quotes_the_collected_figures():
    """Every mean +- std the README quotes is one the collector wrote from
    the committed logs, so the README cannot keep an old figure."""
    with open(osp.join(REPO, 'README.md')) as f:
        quoted = re.findall(r'\d+\.\d\d \+- \d+\.\d\d', f.read())
    with open(osp.join(REPO, 'docs', 'results', 'fashion_mnist',
                           'README.md')) as f:
        collected = f.read()
    assert quoted
    assert [q for q in quoted if q not in collected] == []


def test_readme_table_keeps_small_op_counts_visible():
    tool = import_tool_file('tools', 'model_zoo', 'update_readme.py')
    ops = [tool._number(v, 1e9, 3) for v in (12805120, 164010496, 2.3e5,
                                            None, 0)]
    assert ops == ['0.013', '0.164', '0.00023', '-', '0.000']


def test_update_readme_writes_the_files_it_is_given(tmp_path, monkeypatch,
                                                   capsys):
    """--metafile/--readme let another package's zoo use the tool."""
    (tmp_path / 'model-index.yml').write_text('Import: [zoo/metafile.yml]')
    (tmp_path / 'zoo').mkdir()
    metafile = tmp_path / 'zoo' / 'metafile.yml'
    readme = tmp_path / 'zoo' / 'README.md'
    metafile.write_text(
        'Models:\n  - Name: tiny\n    Config: configs/tiny/t.py\n'
        '    Metadata: {FLOPs: 230000, Parameters: 1200}\n'
        '    Results: [{Dataset: D, Metrics: {Top 1 Accuracy: 50.0}}]\n')
    tool = import_tool_file('tools', 'model_zoo', 'update_readme.py')
    readme.write_text(f'# zoo\n{tool.START}\nold\n{tool.END}\n')

    def run(*args: str) -> int:
        monkeypatch.setattr(sys, 'argv', ['update_readme.py', *args])
        try:
            tool.main()
        except SystemExit as stop:
            return stop.code
        return 0

    files = ['--metafile', str(metafile), '--readme', str(readme)]
    assert run('--check', *files) == 2
    assert 'out of date' in capsys.readouterr().err
    assert run(*files) == 0
    assert ('| `tiny` (D) | 0.0012 | 0.00023 | 50.0 | - '
            '| [config](../configs/tiny/t.py) | none |') in readme.read_text()
    assert run('--check', *files) == 0
    assert run('--readme', str(tmp_path / 'no.md')) == 2
    assert capsys.readouterr().err.strip().endswith('no.md: no such file')


@pytest.mark.slow
def test_readme_table_is_generated_from_metafile():
    proc = run_tool(['tools/model_zoo/update_readme.py', '--check'],
                    check=False)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.slow
def test_publish_model_drops_training_state(tmp_path):
    from mmbireal.models import BiRealNet
    src = str(tmp_path / 'epoch_4.pth')
    state = BiRealNet(18).state_dict()
    torch.save({'meta': {'epoch': 4, 'iter': 10, 'cfg': 'x' * 1000},
                'state_dict': state,
                'optimizer': {'state': {}, 'param_groups': []},
                'message_hub': {'log_scalars': {}}}, src)
    proc = run_tool(['tools/model_converters/publish_model.py', src,
                     str(tmp_path / 'bireal18.pth')])
    out = proc.stdout.strip()
    assert re.fullmatch(
        re.escape(str(tmp_path)) + r'/bireal18_\d{8}-[0-9a-f]{8}\.pth', out)
    published = load_checkpoint_file(out)
    assert set(published) == {'meta', 'state_dict'}
    assert published['meta'] == {'epoch': 4, 'iter': 10}
    for key, value in state.items():
        assert torch.equal(published['state_dict'][key], value)
    import hashlib
    with open(out, 'rb') as f:
        assert hashlib.sha256(f.read()).hexdigest()[:8] == out[-12:-4]


@pytest.mark.slow
def test_publish_model_names_a_packed_file(tmp_path):
    from helpers import small_fmnist_model

    from mmbireal.deploy import export_packed
    src = str(tmp_path / 'small.pth')
    export_packed(small_fmnist_model(), src)
    proc = run_tool(['tools/model_converters/publish_model.py', src,
                     str(tmp_path / 'small.bin.pth')])
    out = proc.stdout.strip()
    assert re.fullmatch(
        re.escape(str(tmp_path)) + r'/small_\d{8}-([0-9a-f]{8})\.bin\.pth',
        out)
    published, packed = load_checkpoint_file(out), load_checkpoint_file(src)
    assert published.keys() == packed.keys()  # nothing dropped
    assert published['arch'] == packed['arch']
    for key, value in packed['weights'].items():
        assert torch.equal(published['weights'][key], value)
    import hashlib
    with open(out, 'rb') as f:
        assert hashlib.sha256(f.read()).hexdigest()[:8] == out[-16:-8]
    # a packed file this code cannot read is not published
    bad = load_checkpoint_file(src)
    bad['version'] = 99
    torch.save(bad, src)
    proc = run_tool(['tools/model_converters/publish_model.py', src,
                     str(tmp_path / 'bad.bin.pth')], check=False)
    assert proc.returncode != 0 and 'Traceback' not in proc.stderr
    assert 'version 99, this code reads 1, 2' in \
        proc.stderr.strip().splitlines()[-1]
    assert not list(tmp_path.glob('bad*'))
