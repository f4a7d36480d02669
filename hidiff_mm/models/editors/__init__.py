from .hidiff import HIDiff
from .hidiff_gan import HIDiffGAN
from .hidiff_one_stage import HIDiffOneStage

__all__ = ['HIDiff', 'HIDiffGAN', 'HIDiffOneStage']
