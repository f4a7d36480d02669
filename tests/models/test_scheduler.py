"""The diffusion schedule and step, against the DDPM formulas written out here (no network)."""
import math

import numpy as np
import pytest
import torch

from hidiff_mm.models import HIDiffScheduler, make_betas

REALBLUR = dict(num_train_timesteps=16, beta_schedule='sqrt_linear', prediction_type='sample',
                clip_sample=False, legacy_start_point=False, draw_step_noise=True)


def table(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def abar_by_hand(cfg: dict) -> np.ndarray:
    """alpha-bar of the official schedules, from their definitions."""
    num = cfg.get('num_train_timesteps', 8)
    if cfg.get('beta_schedule', 'linear') == 'linear':
        betas = 0.1 + (0.99 - 0.1) * np.arange(num) / (num - 1)
    else:
        betas = (math.sqrt(0.1) + (math.sqrt(0.99) - math.sqrt(0.1)) * np.arange(num) /
                 (num - 1))**2
    return np.cumprod(1 - betas)


def test_gopro_schedule_matches_published_table():
    """The spec's table, rounded to 5 decimals: off by at most half a unit of the last digit
    (5e-6), our float64 tables by ~1e-16 more. abar_T is given to 4 digits (3.304e-5: 5e-9)."""
    s = HIDiffScheduler()
    half_unit = 5e-6 + 1e-12
    assert torch.allclose(s.betas, table(
        0.1, 0.22714, 0.35429, 0.48143, 0.60857, 0.73571, 0.86286, 0.99), rtol=0, atol=half_unit)
    assert torch.allclose(s.posterior_mean_coef1, table(
        1, 0.70784, 0.53639, 0.42061, 0.32316, 0.22763, 0.13438, 0.05691), rtol=0,
        atol=half_unit)
    assert torch.allclose(s.posterior_mean_coef2, table(
        0, 0.28878, 0.44408, 0.51713, 0.52807, 0.47875, 0.36260, 0.09967), rtol=0,
        atol=half_unit)
    assert s.alphas_cumprod[-1].item() == pytest.approx(3.304e-5, rel=0, abs=5e-9 + 1e-16)


@pytest.mark.parametrize('cfg', [{}, REALBLUR], ids=['gopro', 'realblur'])
def test_tables_equal_the_definitions(cfg):
    """Float64 tables against numpy by hand: the betas differ in the last bits (another
    linspace), and 16 factors of cumprod spread that to ~1e-14 relative, hence 1e-12."""
    s = HIDiffScheduler(**cfg)
    abar = abar_by_hand(cfg)
    prev = np.append(1., abar[:-1])
    np.testing.assert_allclose(s.alphas_cumprod.numpy(), abar, rtol=1e-12)
    np.testing.assert_allclose(s.posterior_mean_coef1.numpy(),
                               (1 - abar / prev) * np.sqrt(prev) / (1 - abar), rtol=1e-12)
    np.testing.assert_allclose(s.posterior_mean_coef2.numpy(),
                               np.sqrt(abar / prev) * (1 - prev) / (1 - abar), rtol=1e-12,
                               atol=1e-15)


def test_sqrt_linear_betas():
    betas = make_betas('sqrt_linear', 16, 0.1, 0.99)
    assert betas[0] == pytest.approx(0.1, rel=1e-15) and betas[-1] == pytest.approx(0.99,
                                                                                    rel=1e-15)
    assert betas[1] == pytest.approx(0.1307, rel=0, abs=5e-5)  # 4 decimals: half a unit
    with pytest.raises(ValueError, match=r"beta_schedule must be one of \['linear', "
                       r"'sqrt_linear', 'cosine'\], got 'quadratic'"):
        make_betas('quadratic', 8, 0.1, 0.99)


def test_add_noise_with_int_and_per_sample_timesteps():
    """float64 latents: both sides round a few times at ~1e-16 of order-1 terms."""
    z, eps = torch.randn(3, 4, 2, dtype=torch.float64), torch.randn(3, 4, 2, dtype=torch.float64)
    legacy, ddpm = HIDiffScheduler(), HIDiffScheduler(legacy_start_point=False)
    abar = abar_by_hand({})
    for t in (7, 3):
        a = float(abar[t])
        assert torch.allclose(legacy.add_noise(z, eps, t), a * z + math.sqrt(1 - a**2) * eps,
                              rtol=0, atol=1e-14)
        assert torch.allclose(ddpm.add_noise(z, eps, t),
                              math.sqrt(a) * z + math.sqrt(1 - a) * eps, rtol=0, atol=1e-14)
    per_sample = ddpm.add_noise(z, eps, torch.tensor([7, 3, 0]))
    for i, t in enumerate((7, 3, 0)):
        assert torch.equal(per_sample[i], ddpm.add_noise(z[i:i + 1], eps[i:i + 1], t)[0])


def test_predict_x0_parameterisations_and_clamp():
    z_t = torch.randn(2, 5, dtype=torch.float64) * 3
    out = torch.randn(2, 5, dtype=torch.float64)
    t, a = 3, float(abar_by_hand({})[3])
    s = HIDiffScheduler(clip_sample=False)
    # float64: terms of order |z_t| / sqrt(abar_3) ~ 30, a few roundings each
    assert torch.allclose(s.predict_x0(out, t, z_t), (z_t - math.sqrt(1 - a) * out) / math.sqrt(a),
                          rtol=0, atol=1e-12)
    assert HIDiffScheduler().predict_x0(out, t, z_t).abs().max() <= 1
    x0_model = HIDiffScheduler(prediction_type='sample', clip_sample=False)
    assert torch.equal(x0_model.predict_x0(out * 5, t, z_t), out * 5)
    with pytest.raises(ValueError, match='prediction_type'):
        HIDiffScheduler(prediction_type='v')


@pytest.mark.parametrize('cfg', [{}, REALBLUR], ids=['gopro', 'realblur'])
@pytest.mark.parametrize('n', [None, 5, 3, 2, 1])
def test_step_is_the_ddpm_posterior_mean_of_the_chosen_jump(cfg, n):
    """E[z_s | z_t, x0] = sqrt(abar_s) beta_ts / (1 - abar_t) x0
    + sqrt(alpha_ts) (1 - abar_s) / (1 - abar_t) z_t, alpha_ts = abar_t / abar_s (DDPM eq. 7 for
    a jump t -> s; s = -1 is the clean end, abar = 1)."""
    s = HIDiffScheduler(**cfg)
    s.set_timesteps(n)
    abar = abar_by_hand(cfg)
    z_t = torch.randn(2, 4, 3, dtype=torch.float64) * 2
    out = torch.randn(2, 4, 3, dtype=torch.float64)
    visited = s.timesteps.tolist()
    for i, t in enumerate(visited):
        nxt = visited[i + 1] if i + 1 < len(visited) else -1
        abar_s = 1.0 if nxt < 0 else abar[nxt]
        alpha_ts = abar[t] / abar_s
        x0 = s.predict_x0(out, t, z_t)
        expected = (math.sqrt(abar_s) * (1 - alpha_ts) / (1 - abar[t]) * x0 +
                    math.sqrt(alpha_ts) * (1 - abar_s) / (1 - abar[t]) * z_t)
        result = s.step(out, t, z_t)
        assert torch.allclose(result.prev_sample, expected, rtol=1e-12, atol=1e-12)
        assert torch.equal(result.pred_original_sample, x0)


@pytest.mark.parametrize('num_train', [8, 16])
def test_timesteps_evenly_spaced_and_anchored(num_train):
    s = HIDiffScheduler(num_train_timesteps=num_train)
    assert s.timesteps.tolist() == list(range(num_train - 1, -1, -1))  # set at construction
    for n in range(1, num_train + 1):
        s.set_timesteps(n)
        ts = s.timesteps.tolist()
        assert len(ts) == n and len(set(ts)) == n and ts == sorted(ts, reverse=True)
        assert ts[0] == num_train - 1
        if n > 1:
            assert ts[-1] == 0
            gaps = -np.diff(ts)
            assert gaps.max() - gaps.min() <= 1  # as even as integers allow
    assert HIDiffScheduler().inference_timesteps(4) == [7, 5, 2, 0]
    assert HIDiffScheduler().inference_timesteps(2) == [7, 0]


@pytest.mark.parametrize('bad', [0, 9, -1, 2.0, 8.0, True, '4'])
def test_invalid_step_counts(bad):
    with pytest.raises(ValueError, match='num_inference_steps'):
        HIDiffScheduler().set_timesteps(bad)


def test_step_outside_the_chosen_timesteps_is_refused():
    s = HIDiffScheduler()
    s.set_timesteps(2)
    with pytest.raises(ValueError, match='not among the chosen timesteps'):
        s.step(torch.zeros(1, 2), 5, torch.zeros(1, 2))


def test_step_noise_draws_change_only_the_rng_stream():
    quiet = HIDiffScheduler(draw_step_noise=False)
    noisy = HIDiffScheduler(draw_step_noise=True)
    z = torch.ones(1, 4, 2)
    torch.manual_seed(0)
    a = quiet.step(z * 0.1, 7, z).prev_sample
    state_quiet = torch.get_rng_state()
    torch.manual_seed(0)
    b = noisy.step(z * 0.1, 7, z).prev_sample
    state_noisy = torch.get_rng_state()
    assert torch.equal(a, b) and not torch.equal(state_quiet, state_noisy)
    torch.manual_seed(0)
    torch.randn(1, 4, 2)  # exactly one draw of the sample's shape
    assert torch.equal(state_noisy, torch.get_rng_state())
    gen = torch.Generator().manual_seed(0)
    noisy.step(z * 0.1, 7, z, generator=gen)
    assert not torch.equal(gen.get_state(), torch.Generator().manual_seed(0).get_state())
