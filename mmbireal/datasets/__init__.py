from .checks import check_datasets
from .fashion_mnist import LocalFashionMNIST

__all__ = ['LocalFashionMNIST', 'check_datasets']
