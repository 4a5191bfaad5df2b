# The full ReActNet-style recipe at Fashion-MNIST scale, step 1: the
# RSign/RPReLU step 1 trained on a frozen real-valued teacher's softmax
# instead of the labels. The teacher is our own real-valued Bi-Real-18 of
# the same data and budget (the clip pre-trained network of the paper's
# procedure, 86.99 +- 0.06 top-1 over three seeds, the ceiling the binary
# network is compared with; each seed's student learns from its own seed's):
# run its chain (tools/reproduce/run_study.sh or the README's commands)
# first.
_base_ = ['./bireal18-rsign-rprelu_step1_1xb64_fmnist.py']
model = dict(
    type='DistillImageClassifier',
    teacher_cfg='{{fileDirname}}/bireal18_clip-pre_1xb64_fmnist.py',
    teacher_ckpt='work_dirs/bireal18_clip-pre_1xb64_fmnist/epoch_4.pth',
    alpha=0.0)
