# Fashion-MNIST (1 channel, 28 px) with the paper's pipeline scaled down:
# shorter side to 32, random 28 crop and flip for training; resize 32 and
# centre crop 28 for test. Read in place from Debian's package
# `dataset-fashion-mnist`; the test split is the official 10,000 images.
dataset_type = 'LocalFashionMNIST'
data_root = '/usr/share/datasets/fashion-mnist'
data_preprocessor = dict(
    num_classes=10, mean=[72.94], std=[90.02], to_rgb=False)

train_pipeline = [
    dict(type='ResizeEdge', scale=32, edge='short'),
    dict(type='RandomCrop', crop_size=28),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='ResizeEdge', scale=32, edge='short'),
    dict(type='CenterCrop', crop_size=28),
    dict(type='PackInputs'),
]

train_dataloader = dict(
    batch_size=64,
    num_workers=1,
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='train',
        pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True))
val_dataloader = dict(
    batch_size=256,
    num_workers=1,
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='test',
        pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False))
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_dataloader = val_dataloader
test_evaluator = val_evaluator
