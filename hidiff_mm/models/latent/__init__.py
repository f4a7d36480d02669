from .beta_schedules import BETA_SCHEDULES, cosine_betas, make_betas
from .latent_encoder import HIDiffLatentEncoder
from .mixer import MixerBlock
from .mixer_denoiser import HIDiffMixerDenoiser
from .mlp_denoiser import HIDiffMLPDenoiser
from .prior_head import LatentPriorHead
from .samplers import SAMPLERS, build_sampler
from .scheduler import PREDICTION_TYPES, HIDiffScheduler

__all__ = [
    'HIDiffLatentEncoder', 'MixerBlock', 'HIDiffMixerDenoiser', 'HIDiffMLPDenoiser',
    'LatentPriorHead', 'HIDiffScheduler', 'make_betas', 'cosine_betas', 'BETA_SCHEDULES',
    'PREDICTION_TYPES', 'SAMPLERS', 'build_sampler'
]
