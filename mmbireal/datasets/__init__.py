from .checks import check_datasets
from .fashion_mnist import LocalFashionMNIST
from .transforms import ToGrayscale

__all__ = ['LocalFashionMNIST', 'ToGrayscale', 'check_datasets']
