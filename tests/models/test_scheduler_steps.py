# Copyright (c) hidiff_mm contributors. All rights reserved.
"""Fewer sampler steps: ``HIDiffScheduler.sample(..., num_inference_steps=n)``."""
import numpy as np
import pytest
import torch

from hidiff_mm.models import HIDiffScheduler

REALBLUR = dict(num_train_timesteps=16, beta_schedule='sqrt_linear', prediction_type='sample',
                clip_sample=False, legacy_start_point=False, draw_step_noise=True)


def _denoiser(z, cond, t):
    """A smooth, t-dependent stand-in for the network (deterministic)."""
    return torch.tanh(0.7 * z + cond) * (1 + 0.05 * t.view(-1, 1, 1).to(z.dtype))


def _inputs(seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(2, 4, 6, generator=gen), torch.randn(2, 4, 6, generator=gen)


@pytest.mark.parametrize('cfg', [{}, REALBLUR], ids=['gopro', 'realblur'])
def test_all_steps_is_the_full_chain_bit_for_bit(cfg):
    s = HIDiffScheduler(**cfg)
    z_T, cond = _inputs()
    torch.manual_seed(3)
    ref, ref_steps = s.sample(_denoiser, z_T, cond, return_intermediates=True)
    rng_ref = torch.get_rng_state()
    for n in (None, s.num_train_timesteps):
        torch.manual_seed(3)
        out, steps = s.sample(_denoiser, z_T, cond, return_intermediates=True,
                              num_inference_steps=n)
        assert torch.equal(out, ref)
        assert all(torch.equal(a, b) for a, b in zip(steps, ref_steps))
        assert torch.equal(torch.get_rng_state(), rng_ref)  # same RNG stream too


@pytest.mark.parametrize('num_train', [8, 16])
def test_timesteps_evenly_spaced_and_anchored(num_train):
    s = HIDiffScheduler(num_train_timesteps=num_train)
    assert s.inference_timesteps() == list(range(num_train - 1, -1, -1))
    for n in range(1, num_train + 1):
        ts = s.inference_timesteps(n)
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
        HIDiffScheduler().sample(_denoiser, *_inputs(), num_inference_steps=bad)


@pytest.mark.parametrize('cfg', [{}, REALBLUR], ids=['gopro', 'realblur'])
def test_posterior_coefs(cfg):
    s = HIDiffScheduler(**cfg)
    abar = s.alphas_cumprod.double().numpy()
    for t in range(s.num_train_timesteps):
        # one step: the stored (float32) coefficients
        c1, c2 = s.posterior_coefs(t, t - 1)
        assert c1 == pytest.approx(float(s.posterior_mean_coef1[t]), rel=1e-6, abs=1e-7)
        assert c2 == pytest.approx(float(s.posterior_mean_coef2[t]), rel=1e-6, abs=1e-7)
        # to the clean end: z = x0
        assert s.posterior_coefs(t, -1) == pytest.approx((1.0, 0.0))
        for u in range(t - 1):
            c1, c2 = s.posterior_coefs(t, u)
            # the DDPM posterior of a jump: mean weights and the composed forward process
            a_ts = abar[t] / abar[u]
            assert c1 == pytest.approx(np.sqrt(abar[u]) * (1 - a_ts) / (1 - abar[t]), rel=1e-5)
            assert c2 == pytest.approx(np.sqrt(a_ts) * (1 - abar[u]) / (1 - abar[t]), rel=1e-5)
            # the posterior mean of a noiseless z_t = sqrt(abar_t) x0 is sqrt(abar_u) x0
            assert c1 + c2 * np.sqrt(abar[t]) == pytest.approx(np.sqrt(abar[u]), rel=1e-6)
    with pytest.raises(ValueError):
        s.posterior_coefs(2, 2)


@pytest.mark.parametrize('cfg', [{}, REALBLUR], ids=['gopro', 'realblur'])
@pytest.mark.parametrize('n', [1, 2, 3, 5])
def test_strided_chain_by_hand(cfg, n):
    s = HIDiffScheduler(**cfg)
    z_T, cond = _inputs(1)
    seen = []

    def denoiser(z, c, t):
        seen.append(t.tolist())
        return _denoiser(z, c, t)

    torch.manual_seed(0)
    out, chain = s.sample(denoiser, z_T, cond, return_intermediates=True,
                          num_inference_steps=n)
    ts = s.inference_timesteps(n)
    assert seen == [[t, t] for t in ts]
    assert len(chain) == n + 1 and torch.equal(chain[0], z_T) and torch.equal(chain[-1], out)
    # the same jumps in float64
    z = z_T.double()
    for i, t in enumerate(ts):
        nxt = ts[i + 1] if i + 1 < n else -1
        x0 = s.predict_x0(_denoiser(z, cond.double(), torch.full((2, ), t)), t, z)
        c1, c2 = s.posterior_coefs(t, nxt)
        z = c1 * x0 + c2 * z
        assert torch.allclose(chain[i + 1].double(), z, atol=1e-5)
    if s.draw_step_noise:  # one unused draw per executed step, as in the full chain
        state = torch.get_rng_state()
        torch.manual_seed(0)
        for _ in range(n):
            torch.randn(z_T.shape)
        assert torch.equal(state, torch.get_rng_state())


def test_one_step_returns_the_first_x0_estimate_and_keeps_gradients():
    s = HIDiffScheduler()
    z_T, cond = _inputs(2)
    scale = torch.tensor(0.5, requires_grad=True)
    out = s.sample(lambda z, c, t: z * scale + c, z_T, cond, num_inference_steps=1)
    assert torch.equal(out, s.predict_x0(z_T * scale + cond, 7, z_T))
    out.sum().backward()
    assert scale.grad is not None
