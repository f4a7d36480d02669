from .latent_encoder import HIDiffLatentEncoder
from .mixer import MixerBlock
from .mixer_denoiser import HIDiffMixerDenoiser
from .mlp_denoiser import HIDiffMLPDenoiser
from .prior_head import LatentPriorHead
from .scheduler import HIDiffScheduler, make_betas

__all__ = [
    'HIDiffLatentEncoder', 'MixerBlock', 'HIDiffMixerDenoiser', 'HIDiffMLPDenoiser',
    'LatentPriorHead', 'HIDiffScheduler', 'make_betas'
]
