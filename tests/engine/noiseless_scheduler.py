"""Test-only diffusion scheduler: HI-Diff's, with a noise-free stage-2 start point."""
import torch
from mmagic.registry import DIFFUSION_SCHEDULERS

from hidiff_mm.models.latent.scheduler import HIDiffScheduler


@DIFFUSION_SCHEDULERS.register_module()
class NoiselessHIDiffScheduler(HIDiffScheduler):
    """``add_noise`` ignores the noise, so stage-2 training depends only on the samples.

    The stage-2 noise is drawn per rank and per forward, so which sample gets which noise
    depends on how a step is split over processes and micro-batches; without it, runs that see
    the same samples can be compared exactly in stage 2 too.
    """

    def add_noise(self, original_samples: torch.Tensor, noise: torch.Tensor,
                  timesteps) -> torch.Tensor:
        return super().add_noise(original_samples, torch.zeros_like(noise), timesteps)
