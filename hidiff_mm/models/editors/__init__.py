from .hidiff import HIDiff
from .hidiff_gan import HIDiffGAN

__all__ = ['HIDiff', 'HIDiffGAN']
