"""What every reverse-step rule of :class:`~hidiff_mm.models.latent.HIDiffScheduler` provides."""
from typing import List, Optional

import torch


class Sampler:
    """One reverse-step rule: ``z_s`` from ``z_t`` and the scheduler's ``x0`` estimate.

    The scheduler owns the schedule and the parameterisation (it turns the denoiser's output
    into ``x0``, clamped if asked); a sampler only decides how to move from step ``t`` to the next
    visited step ``s`` (``-1``: the clean end) given that ``x0``. A sampler holds a reference to
    its scheduler for the float64 tables, and may keep state over one chain (multistep solvers),
    reset by :meth:`reset` whenever the scheduler's ``set_timesteps`` is called.

    Args:
        schedule: the owning ``HIDiffScheduler``.
    """

    name = ''

    def __init__(self, schedule) -> None:
        self.schedule = schedule

    def options(self) -> dict:
        """The sampler's own options (what a config passes besides ``type``)."""
        return {}

    def settings(self) -> dict:
        """``type`` and options, plain values: what checkpoints record."""
        return dict(type=self.name, **self.options())

    def reset(self, timesteps: List[int]) -> None:
        """A new chain will visit ``timesteps`` (descending, 0-based)."""

    def step(self, x0: torch.Tensor, t: int, s: int, sample: torch.Tensor,
             generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """``z_s`` (same shape as ``sample = z_t``) for ``-1 <= s < t``."""
        raise NotImplementedError
