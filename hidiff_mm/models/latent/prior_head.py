"""LatentPriorHead: everything that turns images into HI-Diff's prior tokens, and the interface
its scheduler must have."""
from typing import Any, List, Optional, Tuple, Union

import torch
from mmagic.registry import DIFFUSION_SCHEDULERS, MODELS
from torch import nn

from ...utils.errors import ConfigError

#: What LatentPriorHead (and the checkpoints' settings record) uses of its scheduler.
SCHEDULER_INTERFACE = """\
len(scheduler) -> T, the number of trained steps;
set_timesteps(num_inference_steps) with None = all T steps (the trained chain), or n in [1, T];
timesteps -> the steps set_timesteps chose: a descending 1-D integer tensor of 0-based steps;
step(model_output, timestep: int, sample, generator=None) -> an object with .prev_sample;
add_noise(sample, noise, timestep: int) -> the noised sample at that step (T - 1 in training);
settings() -> a dict of plain values that checkpoints record (DiffusionSettingsHook)"""


def check_scheduler(scheduler: Any) -> None:
    """Raise a ``ConfigError`` naming each part of :data:`SCHEDULER_INTERFACE` that
    ``scheduler`` lacks. ``HIDiffScheduler`` has all of it; MMagic's registered
    ``DDPMScheduler`` / ``DDIMScheduler`` (diffusers' classes) and ``EditDDPMScheduler`` do not
    (no ``len``, no ``set_timesteps(None)``, no ``settings``): use ``HIDiffScheduler``, whose
    ``sampler`` option gives DDIM and DPM-Solver++ (docs/samplers.md)."""
    problems = []
    try:
        num_steps = len(scheduler)
    except TypeError as err:
        problems.append(f'len(scheduler) fails ({err})')
        num_steps = None
    for name in ('set_timesteps', 'step', 'add_noise', 'settings'):
        try:
            member = getattr(scheduler, name)
        except AttributeError:
            member = None
        if not callable(member):
            problems.append(f'no method {name}')
    if num_steps is not None and not problems:
        try:
            scheduler.set_timesteps(None)
            steps = scheduler.timesteps.tolist()
        except Exception as err:  # a scheduler of another interface: named below
            problems.append(f'set_timesteps(None) then timesteps fails ({type(err).__name__}: '
                            f'{err})')
        else:
            if steps != list(reversed(range(num_steps))):
                problems.append(f'set_timesteps(None) chose {steps}, not all {num_steps} steps '
                                'in descending order')
    if problems:
        raise ConfigError(
            f'model.prior_head.scheduler: {type(scheduler).__name__} does not have the '
            f'interface LatentPriorHead uses ({"; ".join(problems)}). It needs:\n'
            f'{SCHEDULER_INTERFACE}\nHIDiffScheduler has it; its sampler option gives DDIM '
            'and DPM-Solver++ (docs/samplers.md)')


@MODELS.register_module()
class LatentPriorHead(nn.Module):
    """Backbone-agnostic prior machinery: stage-1 encoder, stage-2 encoder, denoiser, scheduler.

    * ``encode(blur, sharp)``: the stage-1 prior ``z = E1([sharp, blur])``, ``(B, N, C')``.
    * ``sample(blur, z_start=None)``: the diffusion prior from the blurry image alone. With
      ``z_start`` (stage-2 training) the chain starts at ``add_noise(z_start, eps)``; without it
      (inference) at ``z_T ~ N(0, I)`` — the only random draw (optionally from ``generator``).
      The T-step chain keeps gradients when autograd is enabled.

    Args:
        encoder_s1: config of the stage-1 encoder (sees sharp + blur), or None.
        encoder_s2: config of the stage-2 (condition) encoder (sees blur only).
        denoiser: config of the token denoiser.
        scheduler: config of the diffusion scheduler (``DIFFUSION_SCHEDULERS``); it must have
            the interface of :data:`SCHEDULER_INTERFACE` (checked here: ``HIDiffScheduler``
            has it, MMagic's and diffusers' schedulers do not).
    """

    def __init__(self,
                 encoder_s1: Optional[dict] = dict(type='HIDiffLatentEncoder', in_channels=6),
                 encoder_s2: dict = dict(type='HIDiffLatentEncoder', in_channels=3),
                 denoiser: dict = dict(type='HIDiffMixerDenoiser'),
                 scheduler: dict = dict(type='HIDiffScheduler')) -> None:
        super().__init__()
        self.encoder_s1 = MODELS.build(encoder_s1) if encoder_s1 is not None else None
        self.encoder_s2 = MODELS.build(encoder_s2)
        self.denoiser = MODELS.build(denoiser)
        self.scheduler = DIFFUSION_SCHEDULERS.build(scheduler)
        check_scheduler(self.scheduler)

    def forward(self, *args, **kwargs):
        """:meth:`sample` (so that a DDP wrapper around this head sees the work)."""
        return self.sample(*args, **kwargs)

    def encode(self, blur: torch.Tensor, sharp: torch.Tensor) -> torch.Tensor:
        """blur, sharp: (B, 3, H, W) -> stage-1 prior (B, N, C')."""
        if self.encoder_s1 is None:
            raise RuntimeError('this LatentPriorHead was built without a stage-1 encoder')
        return self.encoder_s1(blur, sharp)

    def sample(self,
               blur: torch.Tensor,
               z_start: Optional[torch.Tensor] = None,
               generator: Optional[torch.Generator] = None,
               return_intermediates: bool = False,
               num_inference_steps: Optional[int] = None
               ) -> Union[torch.Tensor, Tuple[torch.Tensor, List[torch.Tensor]]]:
        """blur: (B, 3, H, W) -> diffusion prior (B, N, C') (and the chain if asked).

        Without ``z_start`` the chain starts at ``z_T ~ N(0, I)``; with it (stage-2 training) at
        ``scheduler.add_noise(z_start, eps, T - 1)``. ``num_inference_steps`` runs an evenly
        spaced subset of the T steps (see :meth:`reverse_chain`).
        """
        cond = self.encoder_s2(blur)
        if z_start is None:
            z_T = torch.randn(cond.shape, generator=generator, device=cond.device,
                              dtype=cond.dtype)
        else:
            noise = torch.randn(z_start.shape, generator=generator, device=z_start.device,
                                dtype=z_start.dtype)
            z_T = self.scheduler.add_noise(z_start, noise, len(self.scheduler) - 1)
        return self.reverse_chain(z_T, cond, generator, return_intermediates,
                                  num_inference_steps)

    def reverse_chain(self,
                      z_T: torch.Tensor,
                      cond: torch.Tensor,
                      generator: Optional[torch.Generator] = None,
                      return_intermediates: bool = False,
                      num_inference_steps: Optional[int] = None
                      ) -> Union[torch.Tensor, Tuple[torch.Tensor, List[torch.Tensor]]]:
        """The sampling loop: ``z_T`` (B, N, C') to ``z_0`` given the condition ``cond``.

        ``scheduler.set_timesteps(num_inference_steps)`` picks the steps (``None``: all T, the
        trained chain; fewer is an approximation the official models were not trained for);
        at each the denoiser sees ``(z_t, cond, t)`` with ``t`` a ``(B,)`` long tensor of 0-based
        steps, and ``scheduler.step`` gives the next latent. Autograd flows through every step
        when enabled. With ``return_intermediates`` also returns ``[z_T, ..., z_0]``.
        """
        self.scheduler.set_timesteps(num_inference_steps)
        z = z_T
        intermediates = [z]
        for t in self.scheduler.timesteps.tolist():
            steps = torch.full((z.shape[0], ), t, dtype=torch.long, device=z.device)
            z = self.scheduler.step(self.denoiser(z, cond, steps), t, z,
                                    generator=generator).prev_sample
            intermediates.append(z)
        return (z, intermediates) if return_intermediates else z
