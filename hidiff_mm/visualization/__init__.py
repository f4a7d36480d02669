from .optional_tensorboard import TensorboardIfInstalled

__all__ = ['TensorboardIfInstalled']
