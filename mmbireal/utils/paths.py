"""Where mmbireal is on disk: the package folder, and the folder holding
it (a checkout's root with configs/ and tools/, or site-packages for a
wheel, whose configs and tools are under ``mmbireal/.mim``)."""
import os.path as osp

PACKAGE_DIR = osp.dirname(osp.dirname(osp.realpath(__file__)))
PACKAGE_PARENT = osp.dirname(PACKAGE_DIR)
