"""HI-Diff's diffusion schedule and deterministic posterior-mean sampler (no network inside)."""
from typing import Callable, List, Optional, Tuple, Union

import numpy as np
import torch
from mmagic.registry import DIFFUSION_SCHEDULERS

Denoiser = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def make_betas(schedule: str, num_steps: int, beta_start: float, beta_end: float) -> np.ndarray:
    """Float64 betas ``(T,)``, computed the way the official code computes each schedule.

    ``'linear'``: ``linspace(beta_start, beta_end)`` (GoPro path, numpy).
    ``'sqrt_linear'``: linear in sqrt(beta), ``linspace(sqrt(start), sqrt(end)) ** 2`` (RealBlur
    path; called "linear" in the official ldm code and "scaled_linear" in diffusers).
    """
    if schedule == 'linear':
        return np.linspace(beta_start, beta_end, num_steps, dtype=np.float64)
    if schedule == 'sqrt_linear':
        sqrt_betas = torch.linspace(beta_start**0.5, beta_end**0.5, num_steps,
                                    dtype=torch.float64)
        return (sqrt_betas**2).numpy()
    raise ValueError(f"beta_schedule must be 'linear' or 'sqrt_linear', got {schedule!r}")


@DIFFUSION_SCHEDULERS.register_module()
class HIDiffScheduler:
    """T-step DDPM schedule with HI-Diff's deterministic sampler: posterior means, no noise.

    Training starts the chain at ``z_T = add_noise(z, eps)`` and back-propagates through all
    T steps; inference starts from ``z_T ~ N(0, I)``. Each step turns the denoiser output into
    ``x0`` (eps- or x0-parameterisation, optionally clamped) and returns the posterior mean
    ``coef1_t * x0 + coef2_t * z_t``. Coefficients are computed and stored in float64 and cast to
    the dtype of the latents at use, so float32 latents see exactly the official float32 buffers
    and float64 latents (the parity tests) the unrounded values. Defaults are the GoPro model.

    Args:
        num_train_timesteps: T (GoPro 8, RealBlur 16).
        beta_start / beta_end: the beta range.
        beta_schedule: ``'linear'`` (GoPro) or ``'sqrt_linear'`` (RealBlur).
        prediction_type: ``'epsilon'`` (GoPro) or ``'sample'`` (x0, RealBlur).
        clip_sample: clamp the x0 estimate to ``[-clip_sample_range, clip_sample_range]``
            (GoPro True, RealBlur False).
        legacy_start_point: the official GoPro start point
            ``abar_T * z + sqrt(1 - abar_T^2) * eps`` instead of DDPM's
            ``sqrt(abar_T) * z + sqrt(1 - abar_T) * eps`` (RealBlur uses the latter).
        draw_step_noise: draw one unused ``N(0, I)`` sample per step, as the official RealBlur
            (ldm) sampler does; only the RNG stream changes, never the output of this sample.
    """

    def __init__(self,
                 num_train_timesteps: int = 8,
                 beta_start: float = 0.1,
                 beta_end: float = 0.99,
                 beta_schedule: str = 'linear',
                 prediction_type: str = 'epsilon',
                 clip_sample: bool = True,
                 clip_sample_range: float = 1.0,
                 legacy_start_point: bool = True,
                 draw_step_noise: bool = False) -> None:
        if prediction_type not in ('epsilon', 'sample'):
            raise ValueError(
                f"prediction_type must be 'epsilon' or 'sample', got {prediction_type!r}")
        betas = make_betas(beta_schedule, num_train_timesteps, beta_start, beta_end)
        alphas = 1. - betas
        abar = np.cumprod(alphas)
        abar_prev = np.append(1., abar[:-1])
        self.num_train_timesteps = num_train_timesteps
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

    def _coef(self, name: str, t: int, ref: torch.Tensor) -> torch.Tensor:
        return getattr(self, name)[t].to(device=ref.device, dtype=ref.dtype)

    def add_noise(self, z0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """The training start point ``z_T`` from a clean prior ``z0`` and ``noise`` (same shape)."""
        last = self.num_train_timesteps - 1
        if self.legacy_start_point:
            abar = self._coef('alphas_cumprod', last, z0)
            return abar * z0 + (1 - abar**2).sqrt() * noise
        return (self._coef('sqrt_alphas_cumprod', last, z0) * z0 +
                self._coef('sqrt_one_minus_alphas_cumprod', last, z0) * noise)

    def predict_x0(self, model_output: torch.Tensor, t: int, z_t: torch.Tensor) -> torch.Tensor:
        """The (optionally clamped) ``x0`` estimate at step ``t`` (0-based)."""
        if self.prediction_type == 'epsilon':
            x0 = (self._coef('sqrt_recip_alphas_cumprod', t, z_t) * z_t -
                  self._coef('sqrt_recipm1_alphas_cumprod', t, z_t) * model_output)
        else:
            x0 = model_output
        if self.clip_sample:
            x0 = x0.clamp(-self.clip_sample_range, self.clip_sample_range)
        return x0

    def step(self, model_output: torch.Tensor, t: int, z_t: torch.Tensor) -> torch.Tensor:
        """One reverse step ``z_t -> z_{t-1}``: the posterior mean of q(z_{t-1} | z_t, x0)."""
        x0 = self.predict_x0(model_output, t, z_t)
        return (self._coef('posterior_mean_coef1', t, z_t) * x0 +
                self._coef('posterior_mean_coef2', t, z_t) * z_t)

    def inference_timesteps(self, num_inference_steps: Optional[int] = None) -> List[int]:
        """The 0-based steps the sampler visits, in order: all T (``None``) or an evenly spaced
        subsequence of ``num_inference_steps`` of them that always starts at ``T - 1`` (the
        noise level of ``z_T``) and, for two or more steps, ends at 0.

        ``round(linspace(T - 1, 0, n))``; e.g. T = 8: n = 4 -> [7, 5, 2, 0], n = 2 -> [7, 0].
        """
        num_train = self.num_train_timesteps
        if num_inference_steps is None:
            return list(reversed(range(num_train)))
        if (isinstance(num_inference_steps, bool) or not isinstance(num_inference_steps, int)
                or not 1 <= num_inference_steps <= num_train):
            raise ValueError(f'num_inference_steps must be an integer in [1, {num_train}] '
                             f'(the schedule has T = {num_train} steps), '
                             f'got {num_inference_steps!r}')
        steps = np.round(np.linspace(num_train - 1, 0, num_inference_steps)).astype(int)
        return [int(t) for t in steps]  # distinct: the spacing is >= 1 because n <= T

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
        abar_t = float(self.alphas_cumprod[t])
        abar_s = 1.0 if s < 0 else float(self.alphas_cumprod[s])
        coef1 = np.sqrt(abar_s) * (1. - abar_t / abar_s) / (1. - abar_t)
        coef2 = np.sqrt(abar_t / abar_s) * (1. - abar_s) / (1. - abar_t)
        return float(coef1), float(coef2)

    def sample(self,
               denoiser: Denoiser,
               z_T: torch.Tensor,
               cond: torch.Tensor,
               generator: Optional[torch.Generator] = None,
               return_intermediates: bool = False,
               num_inference_steps: Optional[int] = None
               ) -> Union[torch.Tensor, Tuple[torch.Tensor, List[torch.Tensor]]]:
        """Run the T-step chain from ``z_T`` (B, N, C') given the condition ``cond`` (B, N, C').

        ``denoiser(z_t, cond, t)`` receives ``t`` as a ``(B,)`` long tensor of 0-based steps.
        Autograd flows through every step when enabled. With ``return_intermediates`` also
        returns ``[z_T, z_{T-1}, ..., z_0]``.

        ``num_inference_steps`` (``None`` or T: the full chain, unchanged) runs only the
        evenly spaced steps of :meth:`inference_timesteps`; each jumps from its step ``t`` to
        the next chosen step ``s`` with the posterior mean of q(z_s | z_t, x0)
        (:meth:`posterior_coefs`; the stored one-step coefficients where ``s = t - 1``), and
        the last one to the clean end. The intermediates are then ``num_inference_steps + 1``
        long. The official models were trained through the full chain only, so fewer steps
        is an approximation of the trained sampler.
        """
        if num_inference_steps is not None:
            self.inference_timesteps(num_inference_steps)  # validates
        if num_inference_steps is not None and num_inference_steps != self.num_train_timesteps:
            return self._sample_strided(denoiser, z_T, cond, generator, return_intermediates,
                                        num_inference_steps)
        z = z_T
        intermediates = [z]
        for t in reversed(range(self.num_train_timesteps)):
            steps = torch.full((z.shape[0], ), t, dtype=torch.long, device=z.device)
            z = self.step(denoiser(z, cond, steps), t, z)
            if self.draw_step_noise:
                torch.randn(z.shape, generator=generator, device=z.device, dtype=z.dtype)
            intermediates.append(z)
        return (z, intermediates) if return_intermediates else z

    def _sample_strided(self, denoiser: Denoiser, z_T: torch.Tensor, cond: torch.Tensor,
                        generator: Optional[torch.Generator], return_intermediates: bool,
                        num_inference_steps: int
                        ) -> Union[torch.Tensor, Tuple[torch.Tensor, List[torch.Tensor]]]:
        timesteps = self.inference_timesteps(num_inference_steps)
        z = z_T
        intermediates = [z]
        for i, t in enumerate(timesteps):
            s = timesteps[i + 1] if i + 1 < len(timesteps) else -1
            steps = torch.full((z.shape[0], ), t, dtype=torch.long, device=z.device)
            x0 = self.predict_x0(denoiser(z, cond, steps), t, z)
            if s == t - 1:
                coef1 = self._coef('posterior_mean_coef1', t, z)
                coef2 = self._coef('posterior_mean_coef2', t, z)
            else:
                c1, c2 = self.posterior_coefs(t, s)
                coef1 = torch.tensor(c1, dtype=z.dtype, device=z.device)
                coef2 = torch.tensor(c2, dtype=z.dtype, device=z.device)
            z = coef1 * x0 + coef2 * z
            if self.draw_step_noise:
                torch.randn(z.shape, generator=generator, device=z.device, dtype=z.dtype)
            intermediates.append(z)
        return (z, intermediates) if return_intermediates else z
