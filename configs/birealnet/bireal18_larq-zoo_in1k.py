# Bi-Real-18 as larq-zoo builds it (Keras), for its ImageNet weights
# converted by tools/model_converters/larq_zoo_to_mmbireal.py:
#   * TensorFlow's 'same' padding: one less row/column before on stride-2
#     layers at even sizes (stem 7x7/2, max-pool 3x3/2, binary 3x3/2 convs);
#   * Keras BN: epsilon 1e-3, momentum 0.8 (PyTorch's momentum 0.2);
#   * larq-zoo's eval preprocessing: centre crop 224/(224+32) of the short
#     side, bicubic resize to 224, ImageNet mean/std on RGB.
# The architecture is otherwise the paper's Bi-Real-18 (ApproxSign,
# magnitude-aware weights, avg-pool + 1x1 conv + BN shortcuts, dense head
# with bias). Test with the converted weights:
#   python tools/test.py configs/birealnet/bireal18_larq-zoo_in1k.py \
#       work_dirs/larq_zoo/bireal18_larq-zoo_in1k.pth
# Training with it fine-tunes from them under bireal18_8xb16_in1k.py's
# schedule (larq-zoo also clips the latent weights to [-1, 1] after each
# step, which this config does not).
_base_ = './bireal18_8xb16_in1k.py'

norm_cfg = dict(type='BN', eps=1e-3, momentum=0.2, requires_grad=True)
model = dict(backbone=dict(padding='tf_same', norm_cfg=norm_cfg))

test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='EfficientNetCenterCrop',
        crop_size=224,
        crop_padding=32,
        interpolation='bicubic'),
    dict(type='PackInputs'),
]
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
# tools/test.py --tta: the crop and its mirror image, scores averaged
tta_pipeline = [
    *test_pipeline[:-1],
    dict(
        type='TestTimeAug',
        transforms=[[
            dict(type='RandomFlip', prob=0.0, direction='horizontal'),
            dict(type='RandomFlip', prob=1.0, direction='horizontal'),
        ], [dict(type='PackInputs')]]),
]
load_from = 'work_dirs/larq_zoo/bireal18_larq-zoo_in1k.pth'
