"""Parity with reference outputs of the official HI-Diff code (tests/data/official_parity).

The references were made by running the official networks in float64, and our networks run in
float64 here, so the comparison does not depend on the CPU's kernels. Bound, for every tensor:
``max|ours - ref| <= RTOL * (1 + max|ref|)`` with ``RTOL = 1e-10``. Regenerating the references
with the vectorised kernels switched off (``ATEN_CPU_CAPABILITY=default``,
``ONEDNN_MAX_CPU_ISA=SSE41``) moved them by at most 1.7e-15 relative to the tensor's scale, so
the bound leaves a factor of 1e4-1e5 for other CPUs and summation orders; a float32 step
anywhere in our float64 path (error ~1e-8) or any modelling difference fails it.
"""
import os.path as osp

import pytest
import torch
import torch.nn.functional as F
from mmagic.registry import DIFFUSION_SCHEDULERS, MODELS

from hidiff_mm.models.layers import convert_to_exact, convert_to_fast
from hidiff_mm.models.official import config_from_official

DATA = osp.join(osp.dirname(osp.dirname(__file__)), 'data', 'official_parity')
RTOL = 1e-10
PATHS = pytest.mark.parametrize('convert', [convert_to_exact, convert_to_fast],
                                ids=['exact', 'fast'])


def load(name: str) -> dict:
    return torch.load(osp.join(DATA, f'{name}.pt'), weights_only=True)


def build(arch: str, kwargs: dict, state_dict: dict) -> torch.nn.Module:
    """The network in float64 with the reference weights (stored as float32: the cast is exact)."""
    net = MODELS.build(config_from_official(arch, kwargs))
    net.load_state_dict(state_dict, strict=True)
    return net.double().eval()


def assert_close(ours: torch.Tensor, ref: torch.Tensor, rtol: float = RTOL) -> None:
    assert ours.shape == ref.shape
    assert ours.dtype == ref.dtype == torch.float64
    bound = rtol * (1 + ref.abs().max().item())
    err = (ours - ref).abs().max().item()
    assert err <= bound, f'max abs difference {err:.3g} > {bound:.3g}'


@PATHS
@pytest.mark.parametrize('name', ['net_g_gopro', 'net_g_realblur'])
def test_transformer(name, convert):
    ref = load(name)
    net = convert(build('Transformer', ref['kwargs'], ref['state_dict']))
    with torch.no_grad():
        assert_close(net(ref['img'], ref['prior']), ref['out'])
        assert_close(net(ref['img2'], ref['prior2']), ref['out2'])


@pytest.mark.parametrize('name', ['le_gelu_s1', 'le_gelu_s2', 'le_lrelu_s1', 'le_lrelu_s2'])
def test_latent_encoder(name):
    ref = load(name)
    arch = 'latent_encoder_gelu' if 'gelu' in name else 'latent_encoder_lrelu'
    net = build(arch, ref['kwargs'], ref['state_dict'])
    with torch.no_grad():
        assert_close(net(ref['blur'], ref.get('gt')), ref['out'])
        # 40x24 input: 10x6 features, so AdaptiveAvgPool2d(4) uses overlapping bins
        assert_close(net(ref['blur2'], ref.get('gt2')), ref['out2'])


def test_mixer_denoiser():
    ref = load('denoise_mixer')
    net = build('denoising', ref['kwargs'], ref['state_dict'])
    batch = ref['x'].shape[0]
    with torch.no_grad():
        # the official GoPro call passes the 1-based step t + 1 = 3, i.e. 0-based step 2
        t3 = ref['t3'][:, 0, 0] - 1
        assert_close(net(ref['x'], ref['c'], t3), ref['out_t3'])
        assert_close(net(ref['x'], ref['c'], torch.full((batch, ), 4)), ref['out_t5_2d'])


def test_mlp_denoiser():
    ref = load('denoise_mlp')
    net = build('simple_denoise', ref['kwargs'], ref['state_dict'])
    with torch.no_grad():
        assert_close(net(ref['x'], ref['c'], ref['t7'][:, 0]), ref['out_t7'])


BUFFERS = ['betas', 'alphas_cumprod', 'alphas_cumprod_prev', 'sqrt_alphas_cumprod',
           'sqrt_one_minus_alphas_cumprod', 'sqrt_recip_alphas_cumprod',
           'sqrt_recipm1_alphas_cumprod', 'posterior_mean_coef1', 'posterior_mean_coef2']
GOPRO_SCHEDULER = dict(type='HIDiffScheduler')
REALBLUR_SCHEDULER = dict(
    type='HIDiffScheduler', num_train_timesteps=16, beta_schedule='sqrt_linear',
    prediction_type='sample', clip_sample=False, legacy_start_point=False, draw_step_noise=True)


@pytest.mark.parametrize('name,cfg', [('sampler_gopro', GOPRO_SCHEDULER),
                                      ('sampler_realblur', REALBLUR_SCHEDULER)])
def test_scheduler_buffers(name, cfg):
    """The float64 tables to a few ulps (each entry is a handful of float64 operations; libm and
    FMA contraction may move the last bit on another machine)."""
    ref = load(name)
    scheduler = DIFFUSION_SCHEDULERS.build(cfg)
    for key in BUFFERS:
        torch.testing.assert_close(getattr(scheduler, key), ref[key], rtol=1e-15, atol=0,
                                   msg=key)


def test_sampler_gopro_inference_and_training_chain():
    ref = load('sampler_gopro')
    head = MODELS.build(dict(
        type='LatentPriorHead', encoder_s1=None,
        encoder_s2=config_from_official('latent_encoder_gelu', ref_encoder_kwargs()),
        denoiser=config_from_official('denoising', ref['kwargs']),
        scheduler=GOPRO_SCHEDULER)).double()
    net = head.denoiser
    net.load_state_dict(ref['state_dict'])
    with torch.no_grad():
        z0, steps = head.reverse_chain(ref['z_T'], ref['c'], return_intermediates=True)
    assert_close(z0, ref['z0'])
    assert_close(torch.stack(steps[1:]), ref['z0_steps'])

    # training: the official (quirky) start point, then the chain with gradients
    z_noisy = head.scheduler.add_noise(ref['z_gt'], ref['noise'], ref['T'] - 1)
    assert_close(z_noisy, ref['z_noisy'])
    z_train = head.reverse_chain(z_noisy, ref['c'])
    assert_close(z_train, ref['z_train'])
    z_train.sum().backward()
    assert_close(net.first_layer[0].weight.grad, ref['grad_first_layer'])
    assert_close(net.time_mlp.grad, ref['grad_time_mlp'])


def ref_encoder_kwargs() -> dict:
    """The tiny stage-2 encoder of the references (its weights do not matter to the chain)."""
    return load('le_gelu_s2')['kwargs']


def test_sampler_realblur_chain_and_rng_stream():
    ref = load('sampler_realblur')
    denoiser = build('simple_denoise', ref['denoise_kwargs'], ref['denoise_state_dict'])
    head = MODELS.build(dict(
        type='LatentPriorHead', encoder_s1=None,
        encoder_s2=config_from_official('latent_encoder_lrelu', ref['condition_kwargs']),
        denoiser=config_from_official('simple_denoise', ref['denoise_kwargs']),
        scheduler=REALBLUR_SCHEDULER)).double().eval()
    head.encoder_s2.load_state_dict(ref['condition_state_dict'])
    head.denoiser.load_state_dict(denoiser.state_dict())

    torch.manual_seed(ref['eval_seed'])
    with torch.no_grad():
        z0, steps = head.sample(ref['img'], return_intermediates=True)
    assert torch.equal(steps[0], ref['z_T_eval'])
    assert_close(torch.stack(steps[1:]), ref['z0_eval_steps'])
    assert_close(z0, ref['z0_eval'])
    # the official sampler draws one unused N(0, I) per step: the RNG stream must match
    after_ours = torch.get_rng_state()
    torch.manual_seed(ref['eval_seed'])
    for _ in range(1 + ref['extra_draws_per_sampling_eval']):
        torch.randn(ref['z_T_eval'].shape, dtype=torch.float64)
    assert torch.equal(after_ours, torch.get_rng_state())

    torch.manual_seed(ref['train_seed'])
    z_train, steps = head.sample(ref['img'], z_start=ref['z_gt'], return_intermediates=True)
    assert_close(steps[0], ref['z_noisy_train'])
    assert_close(torch.stack(steps[1:]), ref['z_train_steps'])
    assert_close(z_train, ref['z_train'])


@PATHS
@pytest.mark.parametrize('name', ['predict_gopro', 'predict_realblur'])
def test_whole_prediction(name, convert):
    """Same seed, same output: the editor's blind prediction equals the official test()."""
    ref = load(name)
    g_ref = load(ref['net_g_weights_file'][:-3])
    types = ref['net_types']
    scheduler = REALBLUR_SCHEDULER if ref['apply_ldm'] else GOPRO_SCHEDULER
    model = MODELS.build(dict(
        type='HIDiff',
        generator=config_from_official(types['net_g'], ref['net_g_kwargs']),
        prior_head=dict(
            type='LatentPriorHead',
            encoder_s1=dict(config_from_official(types['net_le_dm'], ref['net_le_dm_kwargs']),
                            in_channels=6),
            encoder_s2=config_from_official(types['net_le_dm'], ref['net_le_dm_kwargs']),
            denoiser=config_from_official(types['net_d'], ref['net_d_kwargs']),
            scheduler=scheduler),
        data_preprocessor=dict(type='DataPreprocessor', mean=[0.] * 3, std=[255.] * 3)))
    model.generator.load_state_dict(g_ref['state_dict'])
    model.prior_head.encoder_s2.load_state_dict(ref['net_le_dm_state_dict'])
    model.prior_head.denoiser.load_state_dict(ref['net_d_state_dict'])
    convert(model.double().eval())

    torch.manual_seed(ref['seed'])
    with torch.no_grad():
        out = model(ref['lq'], mode='tensor')
    assert_close(out, ref['out'])

    with torch.no_grad():  # the pieces: padding, condition, sampled prior
        padded = F.pad(ref['lq'], (0, 3, 0, 3), 'reflect')
        assert_close(model.prior_head.encoder_s2(padded), ref['prior_c'])
        prior = model.prior_head.reverse_chain(ref['z_T'], ref['prior_c'])
    assert_close(prior, ref['prior'])
