_base_ = './bireal18.py'
model = dict(backbone=dict(depth=34))
