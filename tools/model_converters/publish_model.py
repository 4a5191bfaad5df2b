"""Prepare a trained checkpoint for the model zoo.

Keeps the weights and a short ``meta`` (epoch, iteration, dataset meta),
drops the optimizer, parameter-scheduler and message-hub state, and names
the file ``<name>_<YYYYMMDD>-<sha256[:8]>.pth`` from OUT's stem, as
MMPretrain's model zoo does:

    python tools/model_converters/publish_model.py \\
        work_dirs/bireal18_1xb64_fmnist/epoch_4.pth bireal18_1xb64_fmnist.pth
    # -> bireal18_1xb64_fmnist_20261123-1a2b3c4d.pth

A packed 1-bit file (``tools/deployment/export_binary.py``) has no training
state to drop: it is only named, ``<name>_<YYYYMMDD>-<sha256[:8]>.bin.pth``.

Then add the file's URL (or, for a packed file shipped in
``configs/birealnet/weights/``, its path) as ``Weights:`` of the model in
``configs/birealnet/metafile.yml`` and run
``python tools/model_zoo/update_readme.py``.
"""
import argparse
import datetime
import os.path as osp

from mmbireal.deploy import PackedBiRealNet
from mmbireal.deploy.unpack import is_packed_file
from mmbireal.utils import (
    CheckpointError,
    atomic_torch_save,
    load_checkpoint_file,
)
from mmbireal.utils.launch import check_output_file, fail
from mmbireal.utils.paths import file_sha256

KEEP_META = ('epoch', 'iter', 'dataset_meta', 'mmengine_version', 'seed')


def publish(src: str, dst: str) -> str:
    """Write the slimmed checkpoint and return its final path."""
    ckpt = load_checkpoint_file(src, map_location='cpu')
    suffix = '.pth'
    if is_packed_file(ckpt):
        # what the zoo ships must load: the reader's checks (a version this
        # code reads, every tensor's dtype and shape)
        PackedBiRealNet(ckpt, backend='torch', source=src)
        suffix = '.bin.pth'
    elif isinstance(ckpt, dict) and 'state_dict' in ckpt:
        meta = {k: v for k, v in ckpt.get('meta', {}).items()
                if k in KEEP_META}
        ckpt = {'meta': meta, 'state_dict': ckpt['state_dict']}
    else:
        raise CheckpointError(f'{src} has no state_dict: not a training '
                              'checkpoint or a packed 1-bit file')
    stem = dst[:-len(suffix)] if dst.endswith(suffix) else \
        osp.splitext(dst)[0]
    date = datetime.date.today().strftime('%Y%m%d')

    def named(tmp: str) -> str:  # the name holds the written file's digest
        return f'{stem}_{date}-{file_sha256(tmp)[:8]}{suffix}'

    return atomic_torch_save(ckpt, dst, named)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        'in_file', help='checkpoint saved by training, or a packed file')
    parser.add_argument('out_file', help='output name, e.g. model.pth')
    args = parser.parse_args()
    check_output_file(args.out_file)
    try:
        print(publish(args.in_file, args.out_file))
    except (CheckpointError, FileNotFoundError) as e:
        fail(str(e))


if __name__ == '__main__':
    main()
