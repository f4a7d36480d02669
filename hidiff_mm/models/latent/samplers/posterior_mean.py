"""The official HI-Diff step: the DDPM posterior mean, no noise."""
from typing import Optional

import torch

from .base import Sampler


class PosteriorMeanSampler(Sampler):
    """``z_s = E[z_s | z_t, x0] = coef1 * x0 + coef2 * z_t`` (the official chain, bit for bit).

    For ``s = t - 1`` the scheduler's stored one-step coefficients are used (the official
    buffers); for a jump its :meth:`posterior_coefs`. Equal to DDIM with ``eta = 1`` without the
    noise term.
    """

    name = 'posterior_mean'

    def step(self, x0: torch.Tensor, t: int, s: int, sample: torch.Tensor,
             generator: Optional[torch.Generator] = None) -> torch.Tensor:
        schedule = self.schedule
        if s == t - 1:
            coef1 = schedule._coef('posterior_mean_coef1', t, sample)
            coef2 = schedule._coef('posterior_mean_coef2', t, sample)
        else:
            c1, c2 = schedule.posterior_coefs(t, s)
            coef1 = torch.tensor(c1, dtype=sample.dtype, device=sample.device)
            coef2 = torch.tensor(c2, dtype=sample.dtype, device=sample.device)
        return coef1 * x0 + coef2 * sample
