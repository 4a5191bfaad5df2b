# Fashion-MNIST (1 channel, 28 px) with the paper's pipeline scaled down:
# shorter side to 32, random 28 crop and flip for training; resize 32 and
# centre crop 28 for test. Read in place from Debian's package
# `dataset-fashion-mnist`; the test split is the official 10,000 images.
dataset_type = 'LocalFashionMNIST'
data_root = '/usr/share/datasets/fashion-mnist'
data_preprocessor = dict(
    num_classes=10, mean=[72.94], std=[90.02], to_rgb=False)

# ToGrayscale: image files (the inferencer, LoadImageFromFile) are read in
# colour; the dataset's own 28 x 28 arrays pass unchanged.
train_pipeline = [
    dict(type='ToGrayscale'),
    dict(type='ResizeEdge', scale=32, edge='short'),
    dict(type='RandomCrop', crop_size=28),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='ToGrayscale'),
    dict(type='ResizeEdge', scale=32, edge='short'),
    dict(type='CenterCrop', crop_size=28),
    dict(type='PackInputs'),
]
# tools/test.py --tta: the test image and its mirror image (training flips
# too), class scores averaged
tta_model = dict(type='AverageClsScoreTTA')
tta_pipeline = [
    *test_pipeline[:-1],
    dict(
        type='TestTimeAug',
        transforms=[[
            dict(type='RandomFlip', prob=0.0, direction='horizontal'),
            dict(type='RandomFlip', prob=1.0, direction='horizontal'),
        ], [dict(type='PackInputs')]]),
]

# persistent_workers=False: a worker that outlives its epoch keeps its
# random state, and a resumed run would then augment differently
train_dataloader = dict(
    batch_size=64,
    num_workers=1,
    persistent_workers=False,
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
