from .bireal_net import BinaryBasicBlock, BiRealBlock, BiRealNet

__all__ = ['BiRealBlock', 'BiRealNet', 'BinaryBasicBlock']
