"""DDIM (Song, Meng & Ermon 2021) over the scheduler's visited steps, with ``eta``."""
import math
from typing import Optional

import torch

from ....utils.errors import ConfigError
from .base import Sampler


class DDIMSampler(Sampler):
    """DDIM, eq. 12 of the paper, for a jump ``t -> s``:

    ``z_s = sqrt(abar_s) x0 + sqrt(1 - abar_s - sigma^2) eps + sigma n``, ``n ~ N(0, I)``,
    ``eps = (z_t - sqrt(abar_t) x0) / sqrt(1 - abar_t)``,
    ``sigma = eta sqrt((1 - abar_s) / (1 - abar_t) (1 - abar_t / abar_s))``,

    with ``abar_{-1} = 1`` (the last step returns ``x0``). ``eps`` is re-derived from the
    scheduler's (possibly clamped) ``x0``, as diffusers' DDIM with
    ``use_clipped_model_output=True``, so the rule depends on the network only through ``x0``
    whatever the parameterisation. ``eta = 0``: deterministic DDIM; ``eta = 1``: DDPM's ancestral
    step (its mean is the official posterior mean). With ``eta > 0`` each step draws one
    ``N(0, I)`` sample of the latent's shape (from ``generator`` when given).

    Args:
        schedule: the owning ``HIDiffScheduler``.
        eta: noise scale in [0, 1].
    """

    name = 'ddim'

    def __init__(self, schedule, eta: float = 0.0) -> None:
        super().__init__(schedule)
        if isinstance(eta, bool) or not isinstance(eta, (int, float)) or not 0 <= eta <= 1:
            raise ConfigError(f'ddim sampler: eta must be a number in [0, 1], got {eta!r}')
        self.eta = float(eta)

    def options(self) -> dict:
        return dict(eta=self.eta)

    def coefficients(self, t: int, s: int):
        """``(c_x0, c_z, sigma)`` in float64 with ``z_s = c_x0 x0 + c_z z_t + sigma n``."""
        abar_t, abar_s = self.schedule.alpha_bar(t), self.schedule.alpha_bar(s)
        sigma = self.eta * math.sqrt((1 - abar_s) / (1 - abar_t) * (1 - abar_t / abar_s))
        direction = math.sqrt(max(1 - abar_s - sigma**2, 0.)) / math.sqrt(1 - abar_t)
        return math.sqrt(abar_s) - direction * math.sqrt(abar_t), direction, sigma

    def step(self, x0: torch.Tensor, t: int, s: int, sample: torch.Tensor,
             generator: Optional[torch.Generator] = None) -> torch.Tensor:
        c_x0, c_z, sigma = self.coefficients(t, s)
        prev = c_x0 * x0 + c_z * sample
        if self.eta > 0:
            noise = torch.randn(sample.shape, generator=generator, device=sample.device,
                                dtype=sample.dtype)
            prev = prev + sigma * noise
        return prev
