"""DPM-Solver++ (Lu et al. 2022), multistep, through diffusers' ``DPMSolverMultistepScheduler``."""
from typing import List, Optional

import torch
from diffusers.schedulers.scheduling_dpmsolver_multistep import DPMSolverMultistepScheduler

from ....utils.errors import ConfigError
from .base import Sampler


class DPMSolverPPSampler(Sampler):
    """Multistep DPM-Solver++ in data prediction, the update of diffusers 0.28.

    The scheduler's betas are handed to diffusers (``trained_betas``) together with the exact
    steps the chain visits (``set_timesteps(timesteps=...)``), and diffusers is fed the
    scheduler's ``x0`` with ``prediction_type='sample'``: the parameterisation and the clamp stay
    the scheduler's, the update is diffusers'. The chain ends at the clean end
    (``final_sigmas_type='zero'``, so the last step returns ``x0`` as every sampler here does);
    lower orders are used for the first steps and, as diffusers does below 15 steps, for the last
    one or two. One or two steps are therefore first-order DPM-Solver++, which is deterministic
    DDIM. diffusers computes this update in float32 (float64 latents come back in float64).

    Args:
        schedule: the owning ``HIDiffScheduler``.
        solver_order: 1, 2 (default, "2M") or 3.
    """

    name = 'dpmsolver++'

    def __init__(self, schedule, solver_order: int = 2) -> None:
        super().__init__(schedule)
        if solver_order not in (1, 2, 3) or isinstance(solver_order, bool):
            raise ConfigError(
                f'dpmsolver++ sampler: solver_order must be 1, 2 or 3, got {solver_order!r}')
        self.solver_order = solver_order
        self.solver = DPMSolverMultistepScheduler(
            num_train_timesteps=schedule.num_train_timesteps,
            trained_betas=schedule.betas.numpy(),
            solver_order=solver_order,
            prediction_type='sample',
            algorithm_type='dpmsolver++',
            solver_type='midpoint',
            lower_order_final=True,
            final_sigmas_type='zero')
        self.timesteps: List[int] = []
        self.position = 0

    def options(self) -> dict:
        return dict(solver_order=self.solver_order)

    def reset(self, timesteps: List[int]) -> None:
        self.timesteps = list(timesteps)
        self.position = 0
        self.solver.set_timesteps(timesteps=self.timesteps)

    def step(self, x0: torch.Tensor, t: int, s: int, sample: torch.Tensor,
             generator: Optional[torch.Generator] = None) -> torch.Tensor:
        if self.position >= len(self.timesteps) or self.timesteps[self.position] != t:
            expected = self.timesteps[self.position:self.position + 1]
            raise ValueError(f'dpmsolver++ sampler: steps are taken in the order set_timesteps '
                             f'chose ({self.timesteps}); expected {expected}, got step {t}')
        prev = self.solver.step(x0, t, sample).prev_sample
        self.position += 1
        if s < 0:  # the chain is over: drop the stored x0 estimates (and their graphs)
            self.solver.model_outputs = [None] * self.solver_order
        return prev
