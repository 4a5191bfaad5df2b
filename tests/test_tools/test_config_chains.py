"""Each step's ``load_from`` names the previous step's last checkpoint: a
config of this repo, its final epoch, and a network of the same shape."""
import re

from helpers import birealnet_configs

CHECKPOINT = re.compile(r'^work_dirs/([\w.-]+)/epoch_(\d+)\.pth$')
# what must agree between a step and the step it starts from
SHAPE = ('depth', 'stem_type', 'convs_per_shortcut', 'stem_channels',
         'base_channels', 'in_channels')


def shape(cfg) -> dict:
    backbone = cfg.model.backbone
    # convs_per_shortcut None is the Bi-Real block: one conv per shortcut
    return {k: backbone.get(k) or (1 if k == 'convs_per_shortcut' else None)
            for k in SHAPE}


def test_every_load_from_is_the_last_epoch_of_a_step_of_the_same_shape():
    configs = {name: cfg for name, _, cfg in birealnet_configs()}
    chained = []
    for name, cfg in configs.items():
        source = cfg.get('load_from')
        if not source:
            continue
        match = CHECKPOINT.match(source)
        if match is None:  # e.g. weights converted from another project
            assert not any(f'/{c}/' in source for c in configs), name
            continue
        previous, epoch = match.group(1), int(match.group(2))
        assert previous in configs, f'{name}: no config {previous}'
        assert configs[previous].train_cfg.max_epochs == epoch, name
        assert shape(configs[previous]) == shape(cfg), name
        chained.append(name)
    assert {'binary-resnet18_1xb64_fmnist', 'binary-resnet18_8xb16_in1k',
            'bireal18_1xb64_fmnist'} <= set(chained)


def test_train_and_test_pipelines_hand_over_the_same_channel_order():
    """The data preprocessor converts BGR to RGB for training and test
    alike, so no training step may convert first (mmcv's Lighting with
    to_rgb=True returns an RGB image, which the preprocessor would swap
    back: training on BGR, testing on RGB)."""
    import numpy as np
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import TRANSFORMS

    init_default_scope('mmpretrain')
    # a BGR image whose channels are far apart: B 20, G 120, R 220
    bgr = np.stack([np.full((32, 32), v, np.uint8) for v in (20, 120, 220)],
                   axis=-1)
    checked = 0
    for name, _, cfg in birealnet_configs():
        steps = cfg.train_dataloader.dataset.get('pipeline', [])
        for step in steps:
            if step['type'] != 'Lighting':
                continue
            checked += 1
            out = TRANSFORMS.build(step)(dict(img=bgr.copy()))['img']
            # lighting moves each channel by at most a few pixel values
            assert np.abs(out.astype(int) - bgr).max() < 40, name
    assert checked  # the Adam/ReActNet ImageNet configs have one
