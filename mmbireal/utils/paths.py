"""Files on disk: where mmbireal is (the package folder, and the folder
holding it: a checkout's root with configs/ and tools/, or site-packages
for a wheel, whose configs and tools are under ``mmbireal/.mim``), and a
file's digest."""
import hashlib
import os.path as osp

PACKAGE_DIR = osp.dirname(osp.dirname(osp.realpath(__file__)))
PACKAGE_PARENT = osp.dirname(PACKAGE_DIR)


def file_sha256(path: str) -> str:
    """The hex sha256 of the file at ``path``, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            digest.update(chunk)
    return digest.hexdigest()
