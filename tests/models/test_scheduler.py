"""The diffusion schedule and sampler, against hand-derived values (no network involved)."""
import math

import pytest
import torch

from hidiff_mm.models import HIDiffScheduler, make_betas


def table(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def test_gopro_schedule_matches_published_table():
    """The spec's 5-digit table: rounding there is <= 5e-6, hence atol 1e-5."""
    s = HIDiffScheduler()
    assert torch.allclose(s.betas, table(
        0.1, 0.22714, 0.35429, 0.48143, 0.60857, 0.73571, 0.86286, 0.99), atol=1e-5)
    assert torch.allclose(s.posterior_mean_coef1, table(
        1, 0.70784, 0.53639, 0.42061, 0.32316, 0.22763, 0.13438, 0.05691), atol=1e-5)
    assert torch.allclose(s.posterior_mean_coef2, table(
        0, 0.28878, 0.44408, 0.51713, 0.52807, 0.47875, 0.36260, 0.09967), atol=1e-5)
    assert s.alphas_cumprod[-1].item() == pytest.approx(3.304e-5, rel=1e-3)


def test_sqrt_linear_betas():
    betas = make_betas('sqrt_linear', 16, 0.1, 0.99)
    assert betas[0] == pytest.approx(0.1) and betas[-1] == pytest.approx(0.99)
    assert betas[1] == pytest.approx(0.1307, abs=1e-4)
    assert all(math.sqrt(b2) - math.sqrt(b1) == pytest.approx(math.sqrt(betas[1]) - math.sqrt(
        betas[0])) for b1, b2 in zip(betas[:-1], betas[1:]))
    with pytest.raises(ValueError, match='beta_schedule'):
        make_betas('cosine', 8, 0.1, 0.99)


def test_start_points():
    z, eps = torch.randn(3, 4), torch.randn(3, 4)
    legacy = HIDiffScheduler()
    abar = float(legacy.alphas_cumprod[-1])
    assert torch.allclose(legacy.add_noise(z, eps), abar * z + math.sqrt(1 - abar**2) * eps)
    ddpm = HIDiffScheduler(legacy_start_point=False)
    assert torch.allclose(ddpm.add_noise(z, eps),
                          math.sqrt(abar) * z + math.sqrt(1 - abar) * eps)


def test_step_eps_and_x0_parameterisations_and_clamp():
    z_t, out = torch.randn(2, 5) * 3, torch.randn(2, 5)
    s = HIDiffScheduler()
    t = 3
    abar = float(s.alphas_cumprod[t])
    x0 = (z_t / math.sqrt(abar) - math.sqrt(1 / abar - 1) * out).clamp(-1, 1)
    expected = float(s.posterior_mean_coef1[t]) * x0 + float(s.posterior_mean_coef2[t]) * z_t
    assert torch.allclose(s.step(out, t, z_t), expected, atol=1e-5)

    unclamped = HIDiffScheduler(clip_sample=False)
    assert unclamped.predict_x0(out, t, z_t).abs().max() > 1

    x0_model = HIDiffScheduler(prediction_type='sample', clip_sample=False)
    assert torch.equal(x0_model.predict_x0(out * 5, t, z_t), out * 5)
    with pytest.raises(ValueError, match='prediction_type'):
        HIDiffScheduler(prediction_type='v')


def test_sample_runs_all_steps_in_order_with_gradients():
    s = HIDiffScheduler(num_train_timesteps=4, clip_sample=False)
    seen = []
    scale = torch.tensor(0.5, requires_grad=True)

    def denoiser(z, cond, t):
        seen.append(t.tolist())
        return z * scale + cond

    z0, chain = s.sample(denoiser, torch.ones(2, 3), torch.zeros(2, 3),
                         return_intermediates=True)
    assert seen == [[3, 3], [2, 2], [1, 1], [0, 0]]
    assert len(chain) == 5 and torch.equal(chain[0], torch.ones(2, 3))
    z0.sum().backward()
    assert scale.grad is not None and scale.grad != 0


def test_step_noise_draws_change_only_the_rng_stream():
    quiet = HIDiffScheduler(draw_step_noise=False)
    noisy = HIDiffScheduler(draw_step_noise=True)

    def denoiser(z, cond, t):
        return z * 0.1

    torch.manual_seed(0)
    a = quiet.sample(denoiser, torch.ones(1, 4), None)
    state_quiet = torch.get_rng_state()
    torch.manual_seed(0)
    b = noisy.sample(denoiser, torch.ones(1, 4), None)
    assert torch.equal(a, b) and not torch.equal(state_quiet, torch.get_rng_state())
