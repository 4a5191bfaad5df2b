# Bi-Real-18 for 28 px grayscale images: 3x3/1 stem without max-pool,
# 10 classes. Stages see 28, 14, 7 and 4 px.
_base_ = './bireal18.py'
model = dict(
    backbone=dict(in_channels=1, stem_type='small'),
    head=dict(num_classes=10, topk=(1, )))
