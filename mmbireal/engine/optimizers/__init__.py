from .binary_optim_wrapper_constructor import BinaryOptimWrapperConstructor

__all__ = ['BinaryOptimWrapperConstructor']
