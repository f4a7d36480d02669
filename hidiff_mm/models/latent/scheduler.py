"""HI-Diff's diffusion schedule, parameterisation and reverse step (no network inside).

It has the interface of :data:`~hidiff_mm.models.latent.prior_head.SCHEDULER_INTERFACE`
(diffusers' method names, ``len() = T``, ``set_timesteps(None)`` = all T steps, integer steps,
``settings()``), so the sampling loop that calls the denoiser lives once, in
:class:`~hidiff_mm.models.latent.prior_head.LatentPriorHead`, and works for any step subset.
Diffusers' and MMagic's own schedulers do not have that interface (the head refuses them).
The step rule itself is a :mod:`~hidiff_mm.models.latent.samplers` object chosen by name.
"""
from dataclasses import dataclass
from typing import List, Optional, Tuple, Union

import numpy as np
import torch
from mmagic.registry import DIFFUSION_SCHEDULERS

from ...utils.errors import ConfigError
from .beta_schedules import make_betas
from .samplers import build_sampler

Timesteps = Union[int, torch.Tensor]

PREDICTION_TYPES = ('epsilon', 'sample', 'v_prediction')
# What a trained denoiser's outputs mean: a checkpoint must be sampled with the same values.
TRAINED_SETTINGS = ('num_train_timesteps', 'beta_schedule', 'beta_start', 'beta_end',
                    'prediction_type')


def inference_steps_problem(num_inference_steps: int,
                            num_train_timesteps: int) -> Optional[str]:
    """What is wrong with ``num_inference_steps`` unless it is an integer in [1, T]; else None."""
    if (isinstance(num_inference_steps, bool) or not isinstance(num_inference_steps, int)
            or not 1 <= num_inference_steps <= num_train_timesteps):
        return (f'num_inference_steps must be an integer in [1, {num_train_timesteps}] '
                f'(the schedule has T = {num_train_timesteps} steps), '
                f'got {num_inference_steps!r}')
    return None


def check_num_inference_steps(num_inference_steps: int, num_train_timesteps: int) -> None:
    """Raise ``ConfigError`` unless ``num_inference_steps`` is an integer in [1, T]."""
    problem = inference_steps_problem(num_inference_steps, num_train_timesteps)
    if problem:
        raise ConfigError(problem)


@dataclass
class HIDiffSchedulerOutput:
    """What :meth:`HIDiffScheduler.step` returns (diffusers' field names).

    Attributes:
        prev_sample: ``z_s`` at the next visited step, same shape as the sample ``(B, N, C')``.
        pred_original_sample: the (optionally clamped) ``x0`` estimate at this step.
    """

    prev_sample: torch.Tensor
    pred_original_sample: torch.Tensor


@DIFFUSION_SCHEDULERS.register_module()
class HIDiffScheduler:
    """T-step DDPM schedule; by default HI-Diff's deterministic step (the posterior mean).

    Each step turns the denoiser output into ``x0`` (eps-, x0- or v-parameterisation,
    optionally clamped) and hands it to the sampler, which returns the latent at the next step
    ``s`` that :meth:`set_timesteps` chose (``t - 1`` for the full chain, the clean end after the
    last step). The default sampler, ``'posterior_mean'``, returns the mean of
    q(z_s | z_t, x0), ``coef1 * x0 + coef2 * z_t``: the official chain. Coefficients are computed
    and stored in float64 and cast to the dtype of the latents at use, so float32 latents see
    exactly the official float32 buffers and float64 latents (the parity tests) the unrounded
    values. Defaults are the GoPro model. See ``docs/samplers.md``.

    Args:
        num_train_timesteps: T (GoPro 8, RealBlur 16).
        beta_start / beta_end: the beta range (not used by ``'cosine'``).
        beta_schedule: ``'linear'`` (GoPro), ``'sqrt_linear'`` (RealBlur) or ``'cosine'``.
        prediction_type: what the denoiser predicts: ``'epsilon'`` (GoPro), ``'sample'`` (x0,
            RealBlur) or ``'v_prediction'`` (``v = sqrt(abar) eps - sqrt(1 - abar) x0``).
        clip_sample: clamp the x0 estimate to ``[-clip_sample_range, clip_sample_range]``
            (GoPro True, RealBlur False).
        legacy_start_point: :meth:`add_noise` uses the official GoPro form
            ``abar_t * z + sqrt(1 - abar_t^2) * eps`` instead of DDPM's
            ``sqrt(abar_t) * z + sqrt(1 - abar_t) * eps`` (RealBlur uses the latter).
        draw_step_noise: draw one unused ``N(0, I)`` sample per step, as the official RealBlur
            (ldm) sampler does; only the RNG stream changes, never the output.
        sampler: the step rule, ``'name'`` or ``dict(type='name', **options)``:
            ``'posterior_mean'`` (official), ``'ddim'`` (option ``eta``) or ``'dpmsolver++'``
            (option ``solver_order``); see :mod:`~hidiff_mm.models.latent.samplers`.
    """

    order = 1

    def __init__(self,
                 num_train_timesteps: int = 8,
                 beta_start: float = 0.1,
                 beta_end: float = 0.99,
                 beta_schedule: str = 'linear',
                 prediction_type: str = 'epsilon',
                 clip_sample: bool = True,
                 clip_sample_range: float = 1.0,
                 legacy_start_point: bool = True,
                 draw_step_noise: bool = False,
                 sampler: Union[str, dict] = 'posterior_mean') -> None:
        if prediction_type not in PREDICTION_TYPES:
            raise ConfigError(f'prediction_type must be one of {list(PREDICTION_TYPES)} (eps, '
                              f'x0, v), got {prediction_type!r}')
        betas = make_betas(beta_schedule, num_train_timesteps, beta_start, beta_end)
        alphas = 1. - betas
        abar = np.cumprod(alphas)
        abar_prev = np.append(1., abar[:-1])
        self.num_train_timesteps = num_train_timesteps
        self.beta_schedule = beta_schedule
        self.beta_start = None if beta_schedule == 'cosine' else beta_start
        self.beta_end = None if beta_schedule == 'cosine' else beta_end
        self.prediction_type = prediction_type
        self.clip_sample = clip_sample
        self.clip_sample_range = clip_sample_range
        self.legacy_start_point = legacy_start_point
        self.draw_step_noise = draw_step_noise
        f64 = torch.float64
        self.betas = torch.tensor(betas, dtype=f64)
        self.alphas_cumprod = torch.tensor(abar, dtype=f64)
        self.alphas_cumprod_prev = torch.tensor(abar_prev, dtype=f64)
        self.sqrt_alphas_cumprod = torch.tensor(np.sqrt(abar), dtype=f64)
        self.sqrt_one_minus_alphas_cumprod = torch.tensor(np.sqrt(1. - abar), dtype=f64)
        self.sqrt_recip_alphas_cumprod = torch.tensor(np.sqrt(1. / abar), dtype=f64)
        self.sqrt_recipm1_alphas_cumprod = torch.tensor(np.sqrt(1. / abar - 1), dtype=f64)
        self.posterior_mean_coef1 = torch.tensor(
            betas * np.sqrt(abar_prev) / (1. - abar), dtype=f64)
        self.posterior_mean_coef2 = torch.tensor(
            (1. - abar_prev) * np.sqrt(alphas) / (1. - abar), dtype=f64)
        self.set_sampler(sampler)

    def __len__(self) -> int:
        return self.num_train_timesteps

    def set_sampler(self, sampler: Union[str, dict]) -> None:
        """Sample with another step rule from now on (same schedule and parameterisation):
        ``'name'`` or ``dict(type='name', **options)``, as the ``sampler`` argument."""
        self.sampler = build_sampler(sampler, self)
        self.set_timesteps()

    def alpha_bar(self, t: int) -> float:
        """``abar_t`` in float64 for a 0-based step, 1 for ``t = -1`` (the clean end)."""
        return 1.0 if t < 0 else float(self.alphas_cumprod[t])

    def settings(self) -> dict:
        """Everything that defines this scheduler, as plain values (checkpoints record it)."""
        names = TRAINED_SETTINGS + ('clip_sample', 'clip_sample_range', 'legacy_start_point',
                                    'draw_step_noise')
        return dict({name: getattr(self, name) for name in names},
                    sampler=self.sampler.settings())

    def compare_settings(self, trained: dict) -> List[str]:
        """Check the :meth:`settings` a checkpoint was trained with against this scheduler.

        Raises:
            ValueError: T, the beta schedule or the parameterisation differ: the denoiser's
                outputs would be read as something else (the message names each key, both
                values and the option to set).

        Returns:
            One line per sampling-time setting that differs (sampler, its options, clamp,
            start point, step-noise draws): allowed, for the caller to log.
        """
        current = self.settings()
        wrong = [k for k in TRAINED_SETTINGS if trained.get(k) != current[k]]
        if wrong:
            pairs = '; '.join(f'{k}: trained {trained.get(k)!r}, configured {current[k]!r}'
                              for k in wrong)
            fixes = ', '.join(f'model.prior_head.scheduler.{k}={trained.get(k)!r}'
                              for k in wrong)
            raise ConfigError(
                'the checkpoint\'s denoiser was trained with another schedule or '
                f'parameterisation ({pairs}); its outputs cannot be sampled with this one. '
                f'Set {fixes} (the sampler and its steps may differ)')
        return [f'{k}: trained with {trained.get(k)!r}, sampling with {current[k]!r}'
                for k in current if k not in TRAINED_SETTINGS and trained.get(k) != current[k]]

    def _coef(self, name: str, t: Timesteps, ref: torch.Tensor) -> torch.Tensor:
        """Table ``name`` at step(s) ``t`` in ``ref``'s dtype/device, broadcastable to it."""
        table = getattr(self, name)
        if isinstance(t, torch.Tensor) and t.ndim > 0:
            values = table[t.cpu().long()]
            return values.to(ref.device, ref.dtype).view(-1, *([1] * (ref.ndim - 1)))
        return table[int(t)].to(device=ref.device, dtype=ref.dtype)

    def inference_timesteps(self, num_inference_steps: Optional[int] = None) -> List[int]:
        """The 0-based steps a chain of ``num_inference_steps`` visits, in order: all T
        (``None``) or an evenly spaced subsequence that starts at ``T - 1`` (the noise level of
        ``z_T``) and, for two or more steps, ends at 0.

        ``round(linspace(T - 1, 0, n))``; e.g. T = 8: n = 4 -> [7, 5, 2, 0], n = 2 -> [7, 0].
        """
        num_train = self.num_train_timesteps
        if num_inference_steps is None:
            return list(reversed(range(num_train)))
        check_num_inference_steps(num_inference_steps, num_train)
        steps = np.round(np.linspace(num_train - 1, 0, num_inference_steps)).astype(int)
        return [int(t) for t in steps]  # distinct: the spacing is >= 1 because n <= T

    def set_timesteps(self, num_inference_steps: Optional[int] = None,
                      device: Optional[Union[str, torch.device]] = None) -> None:
        """Choose the steps of the next chain (see :meth:`inference_timesteps`); they are
        ``self.timesteps``, a descending long tensor."""
        visited = self.inference_timesteps(num_inference_steps)
        self.timesteps = torch.tensor(visited, dtype=torch.long, device=device)
        self.sampler.reset(visited)

    def previous_timestep(self, timestep: int) -> int:
        """The step after ``timestep`` in ``self.timesteps``; -1 (the clean end) after the last."""
        visited = self.timesteps.tolist()
        if timestep not in visited:
            raise ValueError(f'step {timestep} is not among the chosen timesteps {visited}; '
                             'call set_timesteps first')
        i = visited.index(timestep)
        return visited[i + 1] if i + 1 < len(visited) else -1

    def add_noise(self, original_samples: torch.Tensor, noise: torch.Tensor,
                  timesteps: Timesteps) -> torch.Tensor:
        """``z_t`` from clean latents ``(B, N, C')``, ``noise`` (same shape) and ``timesteps``
        (an int or a ``(B,)`` long tensor of 0-based steps; HI-Diff trains from ``T - 1``)."""
        if self.legacy_start_point:
            abar = self._coef('alphas_cumprod', timesteps, original_samples)
            return abar * original_samples + (1 - abar**2).sqrt() * noise
        return (self._coef('sqrt_alphas_cumprod', timesteps, original_samples) * original_samples
                + self._coef('sqrt_one_minus_alphas_cumprod', timesteps, original_samples) * noise)

    def predict_x0(self, model_output: torch.Tensor, t: int, z_t: torch.Tensor) -> torch.Tensor:
        """The (optionally clamped) ``x0`` estimate at step ``t`` (0-based)."""
        if self.prediction_type == 'epsilon':
            x0 = (self._coef('sqrt_recip_alphas_cumprod', t, z_t) * z_t -
                  self._coef('sqrt_recipm1_alphas_cumprod', t, z_t) * model_output)
        elif self.prediction_type == 'v_prediction':
            x0 = (self._coef('sqrt_alphas_cumprod', t, z_t) * z_t -
                  self._coef('sqrt_one_minus_alphas_cumprod', t, z_t) * model_output)
        else:
            x0 = model_output
        if self.clip_sample:
            x0 = x0.clamp(-self.clip_sample_range, self.clip_sample_range)
        return x0

    def posterior_coefs(self, t: int, s: int) -> Tuple[float, float]:
        """``(coef1, coef2)`` of the DDPM posterior mean ``E[z_s | z_t, x0] = coef1 * x0 +
        coef2 * z_t`` for ``-1 <= s < t`` (``s = -1``: the clean end, abar = 1), in float64:

        ``coef1 = sqrt(abar_s) (1 - abar_t / abar_s) / (1 - abar_t)``,
        ``coef2 = sqrt(abar_t / abar_s) (1 - abar_s) / (1 - abar_t)``.

        With ``s = t - 1`` these are the usual one-step coefficients ``posterior_mean_coef1/2``
        (up to float64 rounding).
        """
        if not -1 <= s < t < self.num_train_timesteps:
            raise ValueError(f'need -1 <= s < t < {self.num_train_timesteps}, got t={t}, s={s}')
        abar_t, abar_s = self.alpha_bar(t), self.alpha_bar(s)
        coef1 = np.sqrt(abar_s) * (1. - abar_t / abar_s) / (1. - abar_t)
        coef2 = np.sqrt(abar_t / abar_s) * (1. - abar_s) / (1. - abar_t)
        return float(coef1), float(coef2)

    def step(self, model_output: torch.Tensor, timestep: Timesteps, sample: torch.Tensor,
             generator: Optional[torch.Generator] = None) -> HIDiffSchedulerOutput:
        """One reverse step from ``sample = z_t`` (B, N, C') given the denoiser's output.

        The next step ``s`` is the one after ``timestep`` in ``self.timesteps``; the sampler
        moves there from the ``x0`` estimate (the default one, for ``s = t - 1``, with the stored
        one-step coefficients: the official chain, bit for bit). Autograd flows through when
        enabled. ``generator`` feeds the draws of a stochastic sampler and ``draw_step_noise``.
        """
        t = int(timestep)
        s = self.previous_timestep(t)
        x0 = self.predict_x0(model_output, t, sample)
        prev = self.sampler.step(x0, t, s, sample, generator)
        if self.draw_step_noise:
            torch.randn(sample.shape, generator=generator, device=sample.device,
                        dtype=sample.dtype)
        return HIDiffSchedulerOutput(prev_sample=prev, pred_original_sample=x0)
