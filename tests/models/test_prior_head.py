"""LatentPriorHead's sampling loop: order, gradients, fewer steps, RNG, against a hand chain."""
import math

import pytest
import torch
from mmagic.registry import MODELS
from test_scheduler import REALBLUR, abar_by_hand
from torch import nn

from hidiff_mm.models.latent.prior_head import SCHEDULER_INTERFACE, check_scheduler
from hidiff_mm.utils.errors import ConfigError


@MODELS.register_module(force=True)
class ToyDenoiser(nn.Module):
    """A smooth, step-dependent stand-in for the network that records the steps it sees."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(0.75))
        self.seen = []

    def forward(self, z: torch.Tensor, cond: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.seen.append(t.tolist())
        return torch.tanh(self.scale * z + cond) * (1 + 0.05 * t.view(-1, 1, 1).to(z.dtype))


def head(scheduler: dict):
    enc = dict(type='HIDiffLatentEncoder', embed_dim=4, num_blocks=1)
    return MODELS.build(dict(type='LatentPriorHead', encoder_s1=None,
                             encoder_s2=dict(enc, in_channels=3), denoiser=dict(type='ToyDenoiser'),
                             scheduler=dict(type='HIDiffScheduler', **scheduler))).double()


def inputs(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(2, 4, 6, generator=gen, dtype=torch.float64),
            torch.randn(2, 4, 6, generator=gen, dtype=torch.float64))


def chain_by_hand(cfg: dict, steps: list, z: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
    """The deterministic DDPM posterior-mean chain over ``steps``, from the definitions."""
    abar = abar_by_hand(cfg)
    eps_model = cfg.get('prediction_type', 'epsilon') == 'epsilon'
    for i, t in enumerate(steps):
        out = torch.tanh(0.75 * z + cond) * (1 + 0.05 * t)
        x0 = (z - math.sqrt(1 - abar[t]) * out) / math.sqrt(abar[t]) if eps_model else out
        if cfg.get('clip_sample', True):
            x0 = x0.clamp(-1, 1)
        a_s = abar[steps[i + 1]] if i + 1 < len(steps) else 1.0
        a_ts = abar[t] / a_s
        z = (math.sqrt(a_s) * (1 - a_ts) * x0 + math.sqrt(a_ts) * (1 - a_s) * z) / (1 - abar[t])
    return z


@pytest.mark.parametrize('cfg', [{}, REALBLUR], ids=['gopro', 'realblur'])
@pytest.mark.parametrize('n', [None, 5, 3, 2, 1])
def test_chain_equals_the_hand_chain(cfg, n):
    prior = head(cfg)
    z_T, cond = inputs()
    with torch.no_grad():
        out, chain = prior.reverse_chain(z_T, cond, return_intermediates=True,
                                         num_inference_steps=n)
    steps = prior.scheduler.inference_timesteps(n)
    assert prior.denoiser.seen == [[t, t] for t in steps]
    assert len(chain) == len(steps) + 1 and torch.equal(chain[0], z_T)
    assert torch.equal(chain[-1], out)
    torch.testing.assert_close(out, chain_by_hand(cfg, steps, z_T, cond), rtol=1e-12,
                               atol=1e-12)


@pytest.mark.parametrize('cfg', [{}, REALBLUR], ids=['gopro', 'realblur'])
def test_all_steps_is_the_full_chain_bit_for_bit(cfg):
    prior = head(cfg).float()
    z_T, cond = (x.float() for x in inputs())
    results = []
    for n in (None, prior.scheduler.num_train_timesteps):
        torch.manual_seed(3)
        results.append((prior.reverse_chain(z_T, cond, num_inference_steps=n),
                        torch.get_rng_state()))
    assert torch.equal(results[0][0], results[1][0]) and torch.equal(results[0][1],
                                                                     results[1][1])


def test_rng_draws_and_gradients():
    prior = head(REALBLUR)  # one unused draw per executed step, as the official ldm sampler
    z_T, cond = inputs()
    torch.manual_seed(0)
    out = prior.reverse_chain(z_T, cond, num_inference_steps=3)
    state = torch.get_rng_state()
    torch.manual_seed(0)
    for _ in range(3):
        torch.randn(z_T.shape, dtype=z_T.dtype)
    assert torch.equal(state, torch.get_rng_state())
    out.sum().backward()
    assert prior.denoiser.scale.grad is not None and prior.denoiser.scale.grad != 0


def test_sample_draws_z_T_once_and_starts_training_from_add_noise():
    prior = head({})
    blur = torch.rand(1, 3, 16, 16, dtype=torch.float64)
    with torch.no_grad():
        cond = prior.encoder_s2(blur)
        torch.manual_seed(5)
        out = prior.sample(blur)
        torch.manual_seed(5)
        z_T = torch.randn(cond.shape, dtype=cond.dtype)
        assert torch.equal(out, prior.reverse_chain(z_T, cond))
        z = torch.rand_like(cond)
        torch.manual_seed(6)
        trained = prior.sample(blur, z_start=z)
        torch.manual_seed(6)
        start = prior.scheduler.add_noise(z, torch.randn(cond.shape, dtype=cond.dtype), 7)
        assert torch.equal(trained, prior.reverse_chain(start, cond))


@pytest.mark.parametrize('name', ['DDPMScheduler', 'DDIMScheduler', 'EditDDPMScheduler'])
def test_schedulers_without_the_interface_are_refused_by_name(name):
    """MMagic's registered schedulers lack what the sampling loop, stage-2 training and the
    checkpoints' settings use: building the head says which parts and what is needed."""
    enc = dict(type='HIDiffLatentEncoder', embed_dim=4, num_blocks=1)
    cfg = dict(type='LatentPriorHead', encoder_s1=None, encoder_s2=dict(enc, in_channels=3),
               denoiser=dict(type='ToyDenoiser'), scheduler=dict(type=name))
    with pytest.raises(ConfigError) as err:
        MODELS.build(cfg)
    text = str(err.value)
    assert text.startswith(f'model.prior_head.scheduler: {name} does not have the interface')
    assert 'no method settings' in text and SCHEDULER_INTERFACE in text
    if name != 'EditDDPMScheduler':
        assert f"len(scheduler) fails (object of type '{name}' has no len())" in text


class AlmostScheduler:
    """Every method, but ``set_timesteps(None)`` does not choose all T steps."""

    timesteps = torch.tensor([3, 1])

    def __len__(self):
        return 4

    def set_timesteps(self, num_inference_steps=None):
        pass

    step = add_noise = settings = set_timesteps


def test_check_scheduler():
    check_scheduler(head({}).scheduler)  # HIDiffScheduler has the interface
    with pytest.raises(ConfigError, match=r'set_timesteps\(None\) chose \[3, 1\], not all 4'):
        check_scheduler(AlmostScheduler())
