"""The checkpoint an interrupted run resumes from: one rule for
tools/train.py (``--resume`` without a path, the Ctrl-C line, the start
checkpoint's check) and the study's planner (tools/reproduce/).

Only the standard library: the planner loads this file by its path, without
importing the package (torch, MMPretrain).
"""
import glob
import os.path as osp
import re
import zipfile
from typing import Optional


def resume_point(work_dir: str) -> Optional[str]:
    """The checkpoint an interrupted run in ``work_dir`` resumes from.

    It is the one mmengine's ``work_dir/last_checkpoint`` names, looked up
    in ``work_dir`` first (a moved or copied work dir resumes its own
    file, not the one at the recorded path), else the newest
    ``epoch_*.pth`` (the record may be gone). A file cut short while
    saving does not count (torch writes a zip, whose directory comes
    last).

    Args:
        work_dir (str): The run's work dir.

    Returns:
        str | None: The checkpoint's path, or None if there is none.
    """
    epochs = {}  # epoch_<N>.pth only: not epoch_final.pth, whose folder's
    for path in glob.glob(osp.join(glob.escape(work_dir), 'epoch_*.pth')):
        number = re.fullmatch(r'epoch_(\d+)\.pth', osp.basename(path))
        if number:  # name (e.g. _1xb64_) would give a number
            epochs[int(number.group(1))] = path
    candidates = [epochs[n] for n in sorted(epochs)]
    record = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(record):
        with open(record) as f:
            named = f.read().strip()
        if named:  # the file in work_dir wins: it comes last
            candidates += [named, osp.join(work_dir, osp.basename(named))]
    return next((path for path in reversed(candidates)
                 if osp.isfile(path) and zipfile.is_zipfile(path)), None)
