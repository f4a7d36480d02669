"""Beta schedules of the latent diffusion: linear (official GoPro), sqrt-linear (official
RealBlur) and cosine (Nichol & Dhariwal 2021), in float64."""
import math

import numpy as np
import torch

from ...utils.errors import ConfigError

BETA_SCHEDULES = ('linear', 'sqrt_linear', 'cosine')


def cosine_betas(num_steps: int, offset: float = 0.008, max_beta: float = 0.999) -> np.ndarray:
    """``beta_i = min(1 - f((i + 1) / T) / f(i / T), max_beta)`` with
    ``f(u) = cos((u + offset) / (1 + offset) * pi / 2) ** 2`` (improved DDPM, eq. 17; the same
    definition as diffusers' ``squaredcos_cap_v2``), float64 ``(T,)``."""
    def f(u: float) -> float:
        return math.cos((u + offset) / (1 + offset) * math.pi / 2)**2

    return np.array([min(1 - f((i + 1) / num_steps) / f(i / num_steps), max_beta)
                     for i in range(num_steps)], dtype=np.float64)


def make_betas(schedule: str, num_steps: int, beta_start: float, beta_end: float) -> np.ndarray:
    """Float64 betas ``(T,)``, computed the way the official code computes its two schedules.

    ``'linear'``: ``linspace(beta_start, beta_end)`` (GoPro path, numpy).
    ``'sqrt_linear'``: linear in sqrt(beta), ``linspace(sqrt(start), sqrt(end)) ** 2`` (RealBlur
    path; called "linear" in the official ldm code and "scaled_linear" in diffusers).
    ``'cosine'``: :func:`cosine_betas`; ``beta_start`` / ``beta_end`` are not used.
    """
    if schedule == 'linear':
        return np.linspace(beta_start, beta_end, num_steps, dtype=np.float64)
    if schedule == 'sqrt_linear':
        sqrt_betas = torch.linspace(beta_start**0.5, beta_end**0.5, num_steps,
                                    dtype=torch.float64)
        return (sqrt_betas**2).numpy()
    if schedule == 'cosine':
        return cosine_betas(num_steps)
    raise ConfigError(f'beta_schedule must be one of {list(BETA_SCHEDULES)}, got {schedule!r}')
