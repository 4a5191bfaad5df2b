"""What users call: build a model from a config (and its checkpoint)."""
from .model import build_model

__all__ = ['build_model']
