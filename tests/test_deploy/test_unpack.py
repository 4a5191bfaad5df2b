"""A packed file loads wherever a checkpoint loads: as the float model's
state dict, computing what the packed file computes."""
import pytest
import torch
from helpers import (
    FMNIST_QUICK_CFG,
    NARROW,
    REACT_PARTS,
    small_fmnist_model,
    small_react_model,
)
from mmengine.runner import load_checkpoint

from mmbireal.apis import build_model
from mmbireal.deploy import export_packed, load_packed, pack_classifier
from mmbireal.deploy.unpack import float_state_dict
from mmbireal.models import binary_convs
from mmbireal.utils import CheckpointError, load_state_dict_file
from mmbireal.utils.checkpoint import check_state_dict_fits
from mmbireal.utils.config import read_config

VARIANTS = {
    'magnitude_aware': {},
    'bn_retrain_sign': {'model.backbone.conv_cfg.weight_binarizer': 'sign'},
    'binary_resnet': {'model.backbone.convs_per_shortcut': 2},
    'tf_same': {'model.backbone.padding': 'tf_same'},
}


def _model(variant):
    """A small random model and the config entries that build it."""
    if variant == 'react':
        return small_react_model(), REACT_PARTS
    return small_fmnist_model(**VARIANTS[variant]), VARIANTS[variant]


def _logits(model, x):
    model.eval()
    with torch.no_grad():
        return model(x, mode='tensor')


@pytest.mark.parametrize('variant', [*VARIANTS, 'react'])
def test_unpacked_float_model_computes_the_trained_one(variant):
    model, options = _model(variant)
    state = float_state_dict(pack_classifier(model))
    fresh = build_model(FMNIST_QUICK_CFG, cfg_options={**NARROW, **options})
    assert state['backbone.padding'] == model.backbone.padding
    weights = {k: v for k, v in state.items() if k != 'backbone.padding'}
    check_state_dict_fits(fresh, weights, 'packed')  # every key and shape
    # the backbone takes the padding entry (strict=False: the data
    # preprocessor's buffers are not in the file)
    assert not fresh.load_state_dict(state, strict=False).unexpected_keys
    for _, conv in binary_convs(fresh):  # the latent weights: the signs
        assert set(conv.weight.unique().tolist()) <= {-1.0, 1.0}
    x = torch.randn(4, 1, 28, 28, generator=torch.Generator().manual_seed(3))
    ref, out = _logits(model, x), _logits(fresh, x)
    span = (ref.max() - ref.min()).item()
    # fp32 rounding only: far below what a flipped sign moves
    assert (out - ref).abs().max().item() <= 1e-5 * span
    assert torch.equal(out.argmax(1), ref.argmax(1))


def test_mmengine_and_our_tools_load_a_packed_file(tmp_path):
    model = small_react_model()
    path = str(tmp_path / 'react.bin.pth')
    export_packed(model, path)
    x = torch.randn(2, 1, 28, 28, generator=torch.Generator().manual_seed(5))
    packed = load_packed(path)(x)  # load_packed still reads the file as is
    state = load_state_dict_file(path)
    assert 'head.fc.weight' in state and 'format' not in state
    options = {**NARROW, **REACT_PARTS}
    by_build = build_model(FMNIST_QUICK_CFG, path, cfg_options=options)
    by_mmengine = build_model(FMNIST_QUICK_CFG, cfg_options=options)
    load_checkpoint(by_mmengine, path, map_location='cpu', strict=False)
    span = (packed.max() - packed.min()).item()
    for built in (by_build, by_mmengine):
        out = _logits(built, x)
        assert (out - packed).abs().max().item() <= 1e-3 * span
        assert torch.equal(out.argmax(1), packed.argmax(1))


def test_a_packed_file_of_another_architecture_is_refused(tmp_path):
    packed = pack_classifier(small_fmnist_model())
    packed['arch']['blocks'] = [2, 2, 2, 3]
    with pytest.raises(CheckpointError, match=r'blocks \[2, 2, 2, 3\]'):
        float_state_dict(packed)
    packed = pack_classifier(small_fmnist_model())
    del packed['weights']['layer2.0.conv0.scale']
    with pytest.raises(CheckpointError,
                       match=r"f\.pth: missing 'layer2\.0\.conv0\.scale'"):
        float_state_dict(packed, 'f.pth')
    # a file of a format version this code does not read, or with a part
    # it does not know, is refused, not read as another network
    for key, value in (('version', 99), ('block_act', 'future_act')):
        packed = pack_classifier(small_fmnist_model())
        (packed if key == 'version' else packed['arch'])[key] = value
        with pytest.raises(CheckpointError, match=f'{value}'):
            float_state_dict(packed)
    # a packed file of a narrower model, into the config's model
    path = str(tmp_path / 'narrow.pth')
    export_packed(small_fmnist_model(), path)
    with pytest.raises(CheckpointError, match='does not fit the model'):
        build_model(FMNIST_QUICK_CFG, path)


def test_a_packed_file_of_another_padding_is_refused(tmp_path):
    """Padding changes no key or shape: the file's arch says it."""
    from mmbireal.utils import check_checkpoint_fits
    path = str(tmp_path / 'symmetric.bin.pth')
    export_packed(small_fmnist_model(), path)
    check_checkpoint_fits(small_fmnist_model(), path)  # the same padding
    other = small_fmnist_model(**{'model.backbone.padding': 'tf_same'})
    with pytest.raises(CheckpointError, match=(
            r"packed file .*symmetric.bin.pth: these weights were exported "
            r"from a model with padding 'symmetric'; this model pads "
            r"'tf_same'")):
        check_checkpoint_fits(other, path)


def test_every_loader_refuses_a_packed_file_of_another_padding(tmp_path):
    """MMPretrain's get_model, mmengine's load_checkpoint (load_from, the
    inferencer) and torch's load_state_dict all reach the backbone's check,
    and a file of the same padding loads without an unexpected key."""
    from mmengine.config import Config
    from mmpretrain import get_model
    path = str(tmp_path / 'symmetric.bin.pth')
    export_packed(small_fmnist_model(), path)
    cfg = Config.fromfile(FMNIST_QUICK_CFG)
    cfg.merge_from_dict(NARROW)
    get_model(cfg, pretrained=path)  # the same padding
    cfg.merge_from_dict({'model.backbone.padding': 'tf_same'})
    refused = "exported from a model with padding 'symmetric'; this model"
    with pytest.raises(CheckpointError, match=refused):
        get_model(cfg, pretrained=path)
    other = small_fmnist_model(**{'model.backbone.padding': 'tf_same'})
    with pytest.raises(CheckpointError, match=refused):
        load_checkpoint(other, path, map_location='cpu')
    state = load_state_dict_file(path)  # no model: the entry stays
    with pytest.raises(CheckpointError, match=refused):
        other.load_state_dict(state, strict=False)
    with pytest.raises(CheckpointError, match=refused):  # a bare backbone
        other.backbone.load_state_dict(
            {k[len('backbone.'):]: v for k, v in state.items()
             if k.startswith('backbone.')}, strict=False)


def test_a_packed_file_reads_as_a_checkpoint_with_state_dict_and_meta(
        tmp_path):
    """Hooks such as MMPretrain's EMAHook read ``checkpoint['state_dict']``
    after ``load_from``; MMPretrain's get_model takes the class names from
    ``meta``."""
    from types import SimpleNamespace

    from mmengine.runner.checkpoint import _load_checkpoint
    from mmpretrain.engine.hooks import EMAHook

    model = small_fmnist_model()
    path = str(tmp_path / 'small.bin.pth')
    export_packed(model, path, read_config(FMNIST_QUICK_CFG))
    checkpoint = _load_checkpoint(path, map_location='cpu')
    classes = checkpoint['meta']['dataset_meta']['classes']
    assert len(classes) == 10 and classes[9] == 'Ankle boot'
    fresh = build_model(FMNIST_QUICK_CFG, cfg_options=NARROW)
    load_checkpoint(fresh, path, map_location='cpu', strict=False)
    hook = EMAHook()
    hook.before_run(SimpleNamespace(model=fresh))
    hook.after_load_checkpoint(SimpleNamespace(model=fresh), checkpoint)
    ema = hook.ema_model.module.state_dict()
    for key, value in fresh.state_dict().items():
        assert torch.equal(ema[key], value), key


@pytest.mark.parametrize('arch, expected', [
    ({'depth': None}, "arch depth None is not a positive integer"),
    ({'depth': 'x'}, "arch depth 'x' is not a positive integer"),
    ({'depth': 34}, 'its blocks [4, 4, 4, 4] are not those of a BiRealNet '
     'of depth 34 ([6, 8, 12, 6])'),
    ({'num_classes': '10'}, "arch num_classes '10' is not a positive "
     'integer'),
])
def test_a_packed_file_with_a_bad_arch_is_refused_naming_the_file(
        tmp_path, arch, expected):
    packed = pack_classifier(small_fmnist_model())
    packed['arch'].update(arch)
    if arch.get('depth', 0) is None:
        del packed['arch']['depth']
    path = str(tmp_path / 'bad.bin.pth')
    torch.save(packed, path)
    # the engine reads the blocks, not the depth: only the float model
    # needs the two to agree
    loaders = [load_state_dict_file] + ([] if arch.get('depth') == 34 else
                                        [load_packed])
    for load in loaders:
        with pytest.raises(CheckpointError) as error:
            load(path)
        assert str(error.value).endswith(f'file {path}: {expected}')


@pytest.mark.parametrize('eps', [1e-3, 1e-5])
def test_a_packed_file_loads_exactly_whatever_bn_eps_the_config_sets(
        tmp_path, eps):
    """The file does not record the BN eps it was folded with (larq-zoo's
    config sets 1e-3): the loaded model computes the trained one's logits
    to fp32 rounding either way, and the state dict read from the file is
    left as it was (it loads again the same)."""
    options = {'model.backbone.norm_cfg': dict(type='BN', eps=eps)}
    model = small_fmnist_model(**options).eval()
    path = str(tmp_path / 'eps.bin.pth')
    export_packed(model, path)
    state = load_state_dict_file(path)
    weights = {k: v.clone() for k, v in state.items() if k != 'padding'
               and torch.is_tensor(v)}
    x = torch.randn(4, 1, 28, 28, generator=torch.Generator().manual_seed(4))
    ref = _logits(model, x)
    span = (ref.max() - ref.min()).item()
    for _ in range(2):
        fresh = build_model(FMNIST_QUICK_CFG,
                            cfg_options={**NARROW, **options})
        fresh.load_state_dict(dict(state), strict=False)
        out = _logits(fresh, x)
        assert (out - ref).abs().max().item() <= 1e-5 * span
    for key, value in weights.items():
        assert torch.equal(state[key], value), key
