"""Samplers, parameterisations and schedules beyond the official chain, each against an
independent reference: diffusers' own step on the same inputs, or the formulas written here."""
import math

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler
from diffusers.schedulers.scheduling_ddim import betas_for_alpha_bar
from test_prior_head import head, inputs

from hidiff_mm.models import HIDiffScheduler, cosine_betas, make_betas

PARAMETERISATIONS = ['epsilon', 'sample', 'v_prediction']
EPS64 = torch.finfo(torch.float64).eps
U32 = 2.0**-24  # float32's unit roundoff: the relative error of one rounding to float32


def float32_chain_tol(chain, steps: int) -> float:
    """Bound on a chain that diffusers updates in float32 against its float64 hand form: each
    step rounds the latents and x0 to float32 and forms its coefficients there (a few roundings
    of at most U32 relative to the largest state M of the chain) and carries the error on, so
    16 U32 M steps. Measured: at most 0.9 U32 M steps, with and without vectorised kernels."""
    return 16 * U32 * max(float(c.abs().max()) for c in chain) * steps


def toy_output(z: torch.Tensor, cond: torch.Tensor, t: int) -> torch.Tensor:
    """What test_prior_head's ToyDenoiser returns at step t."""
    return torch.tanh(0.75 * z + cond) * (1 + 0.05 * t)


def x0_by_hand(kind: str, out: torch.Tensor, z: torch.Tensor, abar: float, clip: bool):
    if kind == 'epsilon':
        x0 = (z - math.sqrt(1 - abar) * out) / math.sqrt(abar)
    elif kind == 'v_prediction':
        x0 = math.sqrt(abar) * z - math.sqrt(1 - abar) * out
    else:
        x0 = out
    return x0.clamp(-1, 1) if clip else x0


def test_cosine_betas_are_the_improved_ddpm_schedule():
    """diffusers' squaredcos_cap_v2 and abar_t = f(t + 1) / f(0) by hand. diffusers computes
    the betas in Python floats and rounds them to float32 once: relative error at most U32."""
    for num in (8, 16):
        ours = cosine_betas(num)
        np.testing.assert_allclose(ours, betas_for_alpha_bar(num).double().numpy(),
                                   rtol=U32 + 1e-12, atol=0)
        f = np.cos((np.arange(num + 1) / num + 0.008) / 1.008 * np.pi / 2)**2
        abar = np.cumprod(1 - ours)
        np.testing.assert_allclose(abar[:-1], f[1:-1] / f[0], rtol=1e-12)  # last beta capped
        assert ours[-1] == 0.999
    assert np.array_equal(make_betas('cosine', 8, 0.5, 0.7), cosine_betas(8))


@pytest.mark.parametrize('kind', PARAMETERISATIONS)
@pytest.mark.parametrize('schedule', ['linear', 'sqrt_linear', 'cosine'])
def test_each_parameterisation_recovers_x0_of_a_forward_sample(kind, schedule):
    """z_t = sqrt(abar) x0 + sqrt(1 - abar) eps; the exact eps / x0 / v target gives x0 back."""
    s = HIDiffScheduler(beta_schedule=schedule, prediction_type=kind, clip_sample=False)
    gen = torch.Generator().manual_seed(0)
    x0, eps = (torch.randn(2, 4, 3, generator=gen, dtype=torch.float64) for _ in range(2))
    for t in range(8):
        a = float(s.alphas_cumprod[t])
        z_t = math.sqrt(a) * x0 + math.sqrt(1 - a) * eps
        target = dict(epsilon=eps, sample=x0,
                      v_prediction=math.sqrt(a) * eps - math.sqrt(1 - a) * x0)[kind]
        torch.testing.assert_close(s.predict_x0(target, t, z_t), x0, rtol=1e-9, atol=1e-9)


def diffusers_ddim(kind: str, clip: bool) -> DDIMScheduler:
    """diffusers' DDIM with its abar table in float64 (it builds one in float32, which alone
    moves a step by up to 2e-5 here): its step then runs in float64 on float64 inputs."""
    betas = make_betas('linear', 8, 0.1, 0.99)
    ref = DDIMScheduler(num_train_timesteps=8, trained_betas=betas, prediction_type=kind,
                        clip_sample=clip, set_alpha_to_one=True)
    ref.alphas_cumprod = torch.cumprod(1 - torch.from_numpy(betas), 0)
    ref.final_alpha_cumprod = torch.tensor(1.0, dtype=torch.float64)
    return ref


@pytest.mark.parametrize('kind', PARAMETERISATIONS)
@pytest.mark.parametrize('clip', [True, False])
@pytest.mark.parametrize('eta', [0.0, 0.5, 1.0])
def test_ddim_step_equals_diffusers_ddim_step(kind, clip, eta):
    """Every jump t -> t - k that diffusers' DDIM takes (k = T // n, past 0: the clean end), with
    the same inputs and noise, both in float64. The step's terms are at most
    M = (max|z_t| + max|out|) / sqrt(abar_min) (x0 of the epsilon form at the noisiest step),
    and each of its ~10 operations rounds by at most EPS64 relative to them: 16 EPS64 M bounds
    the difference (measured: 0.6 EPS64 M)."""
    ours = HIDiffScheduler(prediction_type=kind, clip_sample=clip,
                           sampler=dict(type='ddim', eta=eta))
    ref = diffusers_ddim(kind, clip)
    gen = torch.Generator().manual_seed(1)
    z_t = torch.randn(2, 4, 3, generator=gen, dtype=torch.float64) * 1.5
    out = torch.randn(2, 4, 3, generator=gen, dtype=torch.float64)
    magnitude = (z_t.abs().max() + out.abs().max()) / ref.alphas_cumprod.min().sqrt()
    tol = 16 * EPS64 * float(magnitude)
    for n in (8, 4, 2, 1):
        ref.set_timesteps(n)
        for t in range(8):
            s = max(t - 8 // n, -1)
            x0 = ours.predict_x0(out, t, z_t)
            mine = ours.sampler.step(x0, t, s, z_t, torch.Generator().manual_seed(t))
            theirs = ref.step(out, t, z_t, eta=eta, use_clipped_model_output=True,
                              generator=torch.Generator().manual_seed(t))
            torch.testing.assert_close(mine, theirs.prev_sample, rtol=0, atol=tol)
            torch.testing.assert_close(x0, theirs.pred_original_sample, rtol=0, atol=tol)


def test_ddim_with_eta_one_has_the_posterior_mean_as_its_mean():
    """Coefficients of order 1; DDIM's form subtracts nearly equal terms, hence atol 1e-13."""
    s = HIDiffScheduler(sampler=dict(type='ddim', eta=1.0))
    for t in range(8):
        for prev in range(-1, t):
            c_x0, c_z, sigma = s.sampler.coefficients(t, prev)
            np.testing.assert_allclose((c_x0, c_z), s.posterior_coefs(t, prev), rtol=1e-12,
                                       atol=1e-13)
            assert sigma > 0 or prev == -1


def ddim_chain_by_hand(cfg: dict, steps: list, z: torch.Tensor, cond: torch.Tensor):
    abar = np.cumprod(1 - make_betas(cfg.get('beta_schedule', 'linear'), 8, 0.1, 0.99))
    for i, t in enumerate(steps):
        x0 = x0_by_hand(cfg.get('prediction_type', 'epsilon'), toy_output(z, cond, t), z, abar[t],
                        cfg.get('clip_sample', True))
        eps = (z - math.sqrt(abar[t]) * x0) / math.sqrt(1 - abar[t])
        a_s = abar[steps[i + 1]] if i + 1 < len(steps) else 1.0
        z = math.sqrt(a_s) * x0 + math.sqrt(1 - a_s) * eps
    return z


def dpm_solver_pp_2m_by_hand(cfg: dict, steps: list, z: torch.Tensor, cond: torch.Tensor):
    """DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2) in float64: first-order first step,
    second-order multistep after, first order into the clean end (sigma = 0: returns x0)."""
    abar = np.cumprod(1 - make_betas(cfg.get('beta_schedule', 'linear'), 8, 0.1, 0.99))
    alpha, sigma = np.sqrt(abar), np.sqrt(1 - abar)
    lam = np.log(alpha / sigma)
    history = []
    for i, t in enumerate(steps):
        x0 = x0_by_hand(cfg.get('prediction_type', 'epsilon'), toy_output(z, cond, t), z, abar[t],
                        cfg.get('clip_sample', True))
        history.append(x0)
        if i + 1 == len(steps):
            return x0
        s = steps[i + 1]
        h = lam[s] - lam[t]
        if i == 0:
            d = x0
        else:
            r = (lam[t] - lam[steps[i - 1]]) / h
            d = (1 + 1 / (2 * r)) * x0 - 1 / (2 * r) * history[-2]
        z = sigma[s] / sigma[t] * z - alpha[s] * (math.exp(-h) - 1) * d


SAMPLER_CASES = [
    ({}, 'ddim', ddim_chain_by_hand),
    (dict(prediction_type='v_prediction', clip_sample=False, beta_schedule='cosine'), 'ddim',
     ddim_chain_by_hand),
    ({}, 'dpmsolver++', dpm_solver_pp_2m_by_hand),
    (dict(prediction_type='sample', clip_sample=False, beta_schedule='sqrt_linear'),
     'dpmsolver++', dpm_solver_pp_2m_by_hand),
]


@pytest.mark.parametrize('cfg,sampler,by_hand', SAMPLER_CASES)
@pytest.mark.parametrize('n', [None, 5, 3, 2, 1])
def test_chain_equals_the_hand_chain(cfg, sampler, by_hand, n):
    """The whole loop (LatentPriorHead.reverse_chain over the anchored steps) on the toy
    denoiser. DDIM in float64 (1e-12: states of order 1, a few dozen float64 roundings);
    DPM-Solver++ runs diffusers' float32 update (:func:`float32_chain_tol`)."""
    prior = head(dict(cfg, sampler=sampler))
    z_T, cond = inputs()
    with torch.no_grad():
        out, chain = prior.reverse_chain(z_T, cond, num_inference_steps=n,
                                         return_intermediates=True)
    steps = prior.scheduler.inference_timesteps(n)
    expected = by_hand(cfg, steps, z_T, cond)
    tol = 1e-12 if sampler == 'ddim' else float32_chain_tol(chain, len(steps))
    torch.testing.assert_close(out, expected, rtol=0, atol=tol)


def test_first_order_dpm_solver_is_deterministic_ddim():
    z_T, cond = inputs(1)
    with torch.no_grad():
        ddim, chain = head(dict(sampler='ddim')).reverse_chain(z_T, cond,
                                                               return_intermediates=True)
        dpm1 = head(dict(sampler=dict(type='dpmsolver++', solver_order=1))).reverse_chain(
            z_T, cond)
        dpm2 = head(dict(sampler='dpmsolver++')).reverse_chain(z_T, cond)
    # DDIM runs in float64, first-order DPM-Solver++ in diffusers' float32 update
    torch.testing.assert_close(dpm1, ddim, rtol=0, atol=float32_chain_tol(chain, len(chain) - 1))
    assert (dpm2 - ddim).abs().max() > 1e-3  # the second-order steps do change the chain


@pytest.mark.parametrize('sampler', ['ddim', 'dpmsolver++', dict(type='ddim', eta=0.7)])
def test_gradients_flow_and_stochastic_draws_follow_the_generator(sampler):
    prior = head(dict(sampler=sampler))
    z_T, cond = inputs()
    outs = [prior.reverse_chain(z_T, cond, torch.Generator().manual_seed(4), num_inference_steps=3)
            for _ in range(2)]
    assert torch.equal(outs[0], outs[1])
    outs[0].sum().backward()
    assert prior.denoiser.scale.grad is not None and prior.denoiser.scale.grad != 0
    if prior.scheduler.sampler.options().get('eta'):  # eta > 0: one draw per step
        other = prior.reverse_chain(z_T, cond, torch.Generator().manual_seed(5),
                                    num_inference_steps=3)
        assert not torch.allclose(other, outs[0])


def test_set_sampler_swaps_the_step_rule_only():
    z_T, cond = inputs(2)
    prior = head({})
    with torch.no_grad():
        official = prior.reverse_chain(z_T, cond, num_inference_steps=4)
        prior.scheduler.set_sampler(dict(type='ddim', eta=0.0))
        swapped = prior.reverse_chain(z_T, cond, num_inference_steps=4)
        expected = head(dict(sampler='ddim')).reverse_chain(z_T, cond, num_inference_steps=4)
    assert torch.equal(swapped, expected) and not torch.allclose(swapped, official)
    assert prior.scheduler.settings()['sampler'] == dict(type='ddim', eta=0.0)


def test_dpm_solver_refuses_steps_out_of_order():
    s = HIDiffScheduler(sampler='dpmsolver++')
    s.set_timesteps(4)
    z = torch.zeros(1, 2, 3)
    s.step(z, 7, z)
    with pytest.raises(ValueError, match=r'expected \[5\], got step 2'):
        s.step(z, 2, z)


@pytest.mark.parametrize('kwargs,message', [
    (dict(sampler='euler'),
     r"sampler type must be one of \['posterior_mean', 'ddim', 'dpmsolver\+\+'\], got 'euler'"),
    (dict(sampler=dict(type='posterior_mean', eta=0.5)),
     r"sampler 'posterior_mean' takes the option\(s\) \[\], got unknown option\(s\) \['eta'\]"),
    (dict(sampler=dict(type='dpmsolver++', eta=0.5)),
     r"takes the option\(s\) \['solver_order'\], got unknown option\(s\) \['eta'\]"),
    (dict(sampler=dict(type='ddim', eta=1.5)), r'eta must be a number in \[0, 1\]'),
    (dict(sampler=dict(type='dpmsolver++', solver_order=4)), 'solver_order must be 1, 2 or 3'),
    (dict(prediction_type='x0'),
     r"prediction_type must be one of \['epsilon', 'sample', 'v_prediction'\]"),
    (dict(beta_schedule='scaled_linear'), r"beta_schedule must be one of \['linear', "),
])
def test_bad_settings_fail_at_construction_listing_the_choices(kwargs, message):
    with pytest.raises(ValueError, match=message):
        HIDiffScheduler(**kwargs)


def test_settings_comparison_refuses_another_trained_schedule_and_lists_sampling_changes():
    trained = HIDiffScheduler().settings()
    assert trained['sampler'] == dict(type='posterior_mean')
    ddim = HIDiffScheduler(sampler=dict(type='ddim', eta=0.3), clip_sample=False)
    assert ddim.compare_settings(trained) == [
        'clip_sample: trained with True, sampling with False',
        "sampler: trained with {'type': 'posterior_mean'}, sampling with "
        "{'type': 'ddim', 'eta': 0.3}"]
    assert HIDiffScheduler().compare_settings(trained) == []
    with pytest.raises(ValueError, match=r"beta_schedule: trained 'cosine', configured 'linear'; "
                       r"prediction_type: trained 'epsilon', configured 'v_prediction'\)"
                       r".*Set model.prior_head.scheduler.beta_schedule='cosine'"):
        HIDiffScheduler(prediction_type='v_prediction').compare_settings(
            dict(trained, beta_schedule='cosine'))
    cosine = HIDiffScheduler(beta_schedule='cosine', beta_start=0.2).settings()
    assert cosine['beta_start'] is None and cosine['beta_end'] is None
