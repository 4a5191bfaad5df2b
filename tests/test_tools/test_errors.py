"""Bad input gets one clear line from the tools, never a traceback wall."""
import os

import pytest
import torch
from helpers import TINY_FMNIST, run_tool, tiny_random_checkpoint

FMNIST = 'configs/birealnet/bireal18_1xb64-quick_fmnist.py'


def last_error(args, tmp_path) -> str:
    proc = run_tool(['tools/train.py', *args[:1], '--work-dir',
                     str(tmp_path / 'work'), *args[1:]], check=False)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert 'Traceback' not in proc.stderr, proc.stderr[-3000:]
    return proc.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize('options, expected', [
    (['model.backbone.depth=50'],
     'invalid depth 50 for BiRealNet; accepted: [18, 34]'),
    (['model.backbone.conv_cfg.act_binarizer=sgn'],
     "unknown activation binarizer 'sgn'; accepted: 'approx_sign', 'ste', "
     'None'),
    (['model.backbone.conv_cfg.weight_binarizer=xnor'],
     "unknown weight binarizer 'xnor'; accepted: 'magnitude_aware', "
     "'scaled_sign', 'sign', None"),
    (['model.backbone.conv_cfg.backend=cuda'],
     "unknown backend 'cuda'; accepted: auto, native, torch"),
    (['model.backbone.base_channels=-8'],
     'base_channels must be a positive int, got -8'),
    (['model.backbone.act_cfg.type=Swish2'],
     "type 'Swish2' in the config is not a registered mmpretrain model; "
     'closest registered: Swish'),
    (['train_dataloader.dataset.data_root=/nonexistent/fmnist'],
     "Fashion-MNIST folder '/nonexistent/fmnist' does not exist: install it "
     'with `apt-get install dataset-fashion-mnist`'),
    (['model.backbone.in_channels=3'],
     'BiRealNet expects input of shape (N, 3, H, W) (in_channels=3), got '
     '(16, 1, 28, 28)'),
    # std 0 makes every input infinite, so the first loss is NaN
    (['data_preprocessor.std=[0.0]'],
     'loss is nan at iteration 1 (epoch 1, batch 1): training stopped'),
])
@pytest.mark.slow
def test_bad_config_or_data(fmnist_available, tmp_path, options, expected):
    line = last_error([FMNIST, '--cfg-options', *TINY_FMNIST, *options],
                      tmp_path)
    assert line.startswith('error: ')
    assert expected in line


@pytest.mark.slow
def test_missing_config(tmp_path):
    line = last_error(['configs/birealnet/bireal50.py'], tmp_path)
    assert line == 'error: config file configs/birealnet/bireal50.py does ' \
        'not exist; accepted: a config file, e.g. configs/birealnet/' \
        'bireal18_8xb16_in1k.py, or mmbireal::birealnet/NAME.py'


@pytest.mark.slow
def test_unwritable_work_dir(fmnist_available, tmp_path):
    blocker = tmp_path / 'file'
    blocker.write_text('')
    proc = run_tool(['tools/train.py', FMNIST, '--work-dir',
                     str(blocker / 'work')], check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        f'error: cannot create work dir {blocker}/work: Not a directory')


@pytest.mark.slow
def test_command_line_options_a_tool_cannot_honour(tmp_path):
    """Options mmengine would reject later with a traceback."""
    def line(args):
        proc = run_tool(args, check=False)
        assert proc.returncode == 2, proc.stderr[-3000:]
        assert 'Traceback' not in proc.stderr, proc.stderr[-3000:]
        return proc.stderr.strip().splitlines()[-1]

    assert line(['tools/test.py', FMNIST, 'x.pth', '--out', 'p.json']) == (
        'error: --out p.json: the predictions are dumped as a pickle; '
        'accepted: a file name ending in .pkl or .pickle')
    assert line(['tools/test.py', FMNIST, 'x.pth', '--out',
                 str(tmp_path / 'no' / 'p.pkl')]) == (
        f'error: output directory {tmp_path}/no does not exist or is not '
        'writable')
    if not torch.cuda.is_available():
        assert line(['tools/train.py', FMNIST, '--amp']).startswith(
            'error: --amp needs a GPU')
    no_scale = tmp_path / 'no_scale.py'
    no_scale.write_text("model = dict(type='ImageClassifier')\n")
    assert line(['tools/train.py', str(no_scale), '--auto-scale-lr',
                 '--work-dir', str(tmp_path / 'work')]) == (
        f'error: --auto-scale-lr: {no_scale} has no auto_scale_lr = '
        'dict(base_batch_size=N), the total batch size its lr is for; add '
        'it to the config or to --cfg-options')
    # given in --cfg-options it is there (the run then fails further on)
    assert not line(['tools/train.py', str(no_scale), '--auto-scale-lr',
                     '--cfg-options', 'auto_scale_lr.base_batch_size=64',
                     '--work-dir', str(tmp_path / 'work')]).startswith(
        'error: --auto-scale-lr')


@pytest.mark.slow
@pytest.mark.parametrize('option, expected, turn', [
    ('model.backbone.depth=50',
     'invalid depth 50 for BiRealNet; accepted: [18, 34]', 0),
    ('model.backbone.depht=18',
     "BiRealNet does not take the argument(s) 'depht' given in the config",
     1),
    ("model.backbone=dict(type='BiRealNet')",
     '--cfg-options model.backbone=dict(...) is not supported', 0),
    ('model.backbone.type=Nope',
     "type 'Nope' in the config is not a registered mmpretrain model", 1),
])
def test_checkpoint_tools_answer_bad_config_options_in_one_line(
        tmp_path, option, expected, turn):
    config, checkpoint = tiny_random_checkpoint(tmp_path)
    # both tools read their options with the same code: each case runs one
    # of them (turn), so each tool meets two of the four cases
    tools = (('tools/deployment/export_binary.py', [str(tmp_path / 'o.pth')]),
             ('tools/analysis_tools/binary_weight_stats.py', []))
    for tool, out in (tools[turn], ):
        proc = run_tool([tool, config, checkpoint, *out, '--cfg-options',
                         option], check=False)
        assert proc.returncode == 2, proc.stderr[-3000:]
        assert 'Traceback' not in proc.stderr, proc.stderr[-3000:]
        last = proc.stderr.strip().splitlines()[-1]
        assert last.startswith('error: ') and expected in last, last


@pytest.mark.slow
@pytest.mark.parametrize('tool', ['tools/deployment/export_binary.py',
                                  'tools/model_converters/publish_model.py'])
def test_an_output_folder_that_does_not_exist_is_one_line(tmp_path, tool):
    config, checkpoint = tiny_random_checkpoint(tmp_path)
    out = str(tmp_path / 'no' / 'such' / 'out.pth')
    args = [config, checkpoint, out] if 'export' in tool else [
        checkpoint, out]
    proc = run_tool([tool, *args], check=False)
    assert proc.returncode == 2 and 'Traceback' not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        f'error: output directory {tmp_path}/no/such does not exist or is '
        'not writable')


@pytest.mark.slow
def test_export_refuses_to_overwrite_its_checkpoint(tmp_path):
    config, checkpoint = tiny_random_checkpoint(tmp_path)
    before = os.path.getsize(checkpoint)
    proc = run_tool(['tools/deployment/export_binary.py', config,
                     checkpoint, checkpoint], check=False)
    assert proc.returncode == 2 and 'Traceback' not in proc.stderr
    assert 'is the checkpoint itself' in proc.stderr.strip().splitlines()[-1]
    assert os.path.getsize(checkpoint) == before


@pytest.mark.slow
@pytest.mark.parametrize('script, args, expected', [
    ('dist_train.sh', [], 'error: expected at least 2 arguments, got 0; '
     'usage: bash tools/dist_train.sh CONFIG NPROC'),
    ('dist_train.sh', [FMNIST, 'two'],
     "error: NPROC must be a positive number of processes, got 'two'"),
    ('dist_test.sh', [FMNIST, 'x.pth'], 'error: expected at least 3 '
     'arguments, got 2; usage: bash tools/dist_test.sh CONFIG CHECKPOINT'),
    ('slurm_train.sh', ['p'], 'error: expected at least 4 arguments'),
    ('slurm_test.sh', ['p'], 'error: expected at least 4 arguments'),
])
def test_launchers_name_their_arguments(script, args, expected):
    proc = run_tool(['bash', f'tools/{script}', *args], check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith(expected)


@pytest.mark.slow  # torchrun starts a worker process
def test_a_workers_error_line_is_the_launchers_last_word(tmp_path):
    """A worker exits 2 with its one line; torchrun's ChildFailedError
    traceback must not follow it."""
    proc = run_tool(['bash', 'tools/dist_train.sh', FMNIST, '1',
                     '--work-dir', str(tmp_path / 'work'), '--cfg-options',
                     'model.backbone.depth=50'], check=False)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert 'Traceback' not in proc.stderr, proc.stderr[-3000:]
    assert proc.stderr.strip().splitlines()[-1] == (
        'error: invalid depth 50 for BiRealNet; accepted: [18, 34]')


def test_the_cpu_ddp_wrapper_takes_find_unused_parameters(monkeypatch):
    """mmengine reads the top-level key only when it builds the wrapper;
    on CPU the wrapper is built here."""
    from mmengine.config import Config

    from mmbireal.utils import launch
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    monkeypatch.setattr(launch.torch_dist, 'is_initialized', lambda: True)
    cfg = Config(dict(find_unused_parameters=True))
    launch.setup_distributed(cfg, 'pytorch')
    assert cfg.model_wrapper_cfg.find_unused_parameters is True


@pytest.mark.parametrize('launcher', ['slurm', 'mpi'])
def test_cpu_only_launchers_other_than_pytorch_are_refused(
        monkeypatch, capsys, launcher):
    from mmengine.config import Config

    from mmbireal.utils.launch import setup_distributed
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    with pytest.raises(SystemExit) as exit_info:
        setup_distributed(Config(), launcher)
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == (
        f'error: --launcher {launcher} needs CUDA (mmengine selects a GPU '
        'for it); on a machine without one, start the processes with '
        'torchrun and --launcher pytorch\n')


def test_cpu_only_runs_use_gloo_with_or_without_an_env_cfg(monkeypatch):
    from mmengine.config import Config

    from mmbireal.utils.launch import setup_distributed
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    bare = Config()
    setup_distributed(bare, 'none')
    assert bare.env_cfg.dist_cfg.backend == 'gloo'
    full = Config(dict(env_cfg=dict(cudnn_benchmark=False,
                                    dist_cfg=dict(backend='nccl'))))
    setup_distributed(full, 'none')
    assert full.env_cfg == dict(cudnn_benchmark=False,
                                dist_cfg=dict(backend='gloo'))


@pytest.mark.parametrize('device', ['cpu', 'mps'])
def test_amp_is_refused_where_mmengine_cannot_run_it(monkeypatch, capsys,
                                                     device):
    """AmpOptimWrapper asserts CUDA, NPU, MLU or MUSA: on an Apple GPU
    (mps) too --amp must stop in one line, not in the wrapper's assert."""
    import sys

    from helpers import import_tool_file
    train = import_tool_file('tools', 'train.py')
    monkeypatch.setattr(train, 'get_device', lambda: device)
    monkeypatch.setattr(sys, 'argv', ['train.py', FMNIST, '--amp'])
    with pytest.raises(SystemExit) as stop:
        train.parse_args()
    assert stop.value.code == 2
    assert capsys.readouterr().err == (
        "error: --amp needs a GPU (mmengine's AmpOptimWrapper runs on cuda, "
        f"npu, mlu, musa) and this machine's device is {device}; run "
        'without --amp\n')
    monkeypatch.setattr(train, 'get_device', lambda: 'cuda')
    assert train.parse_args().amp


def test_test_tool_interval_needs_show_dir(monkeypatch, capsys):
    """--interval alone used to be ignored: the whole test ran, no image."""
    import sys

    from helpers import import_tool_file
    test_tool = import_tool_file('tools', 'test.py')
    monkeypatch.setattr(sys, 'argv',
                        ['test.py', FMNIST, 'x.pth', '--interval', '5'])
    with pytest.raises(SystemExit) as stop:
        test_tool.parse_args()
    assert stop.value.code == 2
    assert capsys.readouterr().err == (
        'error: --interval needs --show-dir (it picks the test images drawn '
        'there)\n')
    monkeypatch.setattr(sys, 'argv', ['test.py', FMNIST, 'x.pth',
                                      '--show-dir', 'vis'])
    assert test_tool.parse_args().interval == 1
