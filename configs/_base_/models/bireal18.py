# Bi-Real-18, binary (ApproxSign activations, magnitude-aware weights).
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='BiRealNet',
        depth=18,
        conv_cfg=dict(
            type='BinaryConv2d',
            act_binarizer='approx_sign',
            weight_binarizer='magnitude_aware'),
        out_indices=(3, )),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        in_channels=512,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, 5)))
