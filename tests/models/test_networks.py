"""Shapes, parameter counts and contracts of the HI-Diff networks."""
import pytest
import torch
from mmagic.registry import MODELS

from hidiff_mm.models import (HIM, HIDiffLatentEncoder, HIDiffMixerDenoiser, HIDiffMLPDenoiser,
                              HIDiffTransformer, HIDiffTransformerBlock)


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_parameter_counts_equal_the_official_models():
    assert count(HIDiffTransformer()) == 25_298_923
    assert count(HIDiffLatentEncoder(in_channels=6)) == 585_688
    assert count(HIDiffLatentEncoder(in_channels=3)) == 558_040
    assert count(HIDiffMixerDenoiser()) == 2_629_937
    assert count(HIDiffTransformer(ffn_expansion=2.0)) == 22_281_943
    assert count(HIDiffLatentEncoder(6, num_blocks=5, act='lrelu')) == 1_533_912
    assert count(HIDiffLatentEncoder(3, num_blocks=5, act='lrelu')) == 1_506_264
    assert count(HIDiffMLPDenoiser()) == 394_752


def test_registered_by_name():
    for name in ('HIDiffTransformer', 'HIM', 'HIDiffTransformerBlock', 'HIDiffLatentEncoder',
                 'HIDiffMixerDenoiser', 'HIDiffMLPDenoiser', 'LatentPriorHead', 'HIDiff'):
        assert MODELS.get(name) is not None, name


def test_him_contract_and_residual():
    him = HIM(channels=16, num_heads=2, prior_channels=32)
    x, prior = torch.randn(2, 16, 5, 7), torch.randn(2, 9, 32)
    out = him(x, prior)
    assert out.shape == x.shape
    torch.nn.init.zeros_(him.proj.weight)
    torch.nn.init.zeros_(him.proj.bias)
    assert torch.equal(him(x, prior), x)  # zero output projection: HIM is the identity
    with pytest.raises(ValueError, match=r'\(B, N, 32\)'):
        him(x, torch.randn(2, 9, 31))


def test_him_attends_over_prior_tokens():
    """Reference: per head, softmax over the N prior tokens of q k^T / sqrt(d)."""
    torch.manual_seed(0)
    him = HIM(channels=8, num_heads=2, prior_channels=4).double()
    x, prior = torch.randn(1, 8, 2, 3).double(), torch.randn(1, 5, 4).double()
    tokens = x.flatten(2).transpose(1, 2)[0]
    ln = torch.nn.functional.layer_norm
    q = ln(tokens, (8, ), him.norm1.body.weight, him.norm1.body.bias) @ him.q.weight.T
    kv = ln(prior[0], (4, ), him.norm2.body.weight, him.norm2.body.bias) @ him.kv.weight.T
    k, v = kv[:, :8], kv[:, 8:]
    heads = [torch.softmax(q[:, h * 4:(h + 1) * 4] @ k[:, h * 4:(h + 1) * 4].T / 2, -1)
             @ v[:, h * 4:(h + 1) * 4] for h in range(2)]
    expected = tokens + torch.cat(heads, 1) @ him.proj.weight.T + him.proj.bias
    # float64, order-1 values: a few dozen roundings of 1e-16 each
    assert torch.allclose(him(x, prior)[0].flatten(1).T, expected, rtol=0, atol=1e-12)


def test_prior_modulation_is_x_times_w1p_plus_w2p():
    """The bottleneck's modulation: each branch input x becomes x * (W1 p + b1) + (W2 p + b2)."""
    torch.manual_seed(0)
    plain = HIDiffTransformerBlock(8, 2).double()
    modulated = HIDiffTransformerBlock(8, 2, prior_channels=16).double()
    assert not hasattr(plain.attn, 'ln1') and hasattr(modulated.attn, 'ln1')
    missing, unexpected = modulated.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and all('.ln1.' in k or '.ln2.' in k for k in missing)
    x, prior = torch.randn(2, 8, 6, 6).double(), torch.randn(2, 16).double()
    scale, shift = torch.randn(8).double(), torch.randn(8).double()
    with torch.no_grad():
        for branch in (modulated.attn, modulated.ffn):
            branch.ln1.weight.zero_()
            branch.ln2.weight.zero_()
            branch.ln1.bias.fill_(1.)
            branch.ln2.bias.zero_()
        # float64 (the two sides order their sums differently): 1e-12 for order-1 values
        assert torch.allclose(modulated(x, prior), plain(x), rtol=0, atol=1e-12)
        for branch in (modulated.attn, modulated.ffn):
            branch.ln1.bias.copy_(scale)
            branch.ln2.bias.copy_(shift)
        y = x * scale.view(1, 8, 1, 1) + shift.view(1, 8, 1, 1)
        assert torch.allclose(modulated.attn(x, prior), plain.attn(y), rtol=0, atol=1e-12)
        assert torch.allclose(modulated.ffn(x, prior), plain.ffn(y), rtol=0, atol=1e-12)


def test_transformer_shapes_and_errors():
    net = HIDiffTransformer(dim=8, num_blocks=[1, 1, 1, 1], num_refinement_blocks=1,
                            prior_channels=16)
    assert net(torch.rand(1, 3, 24, 40), torch.randn(1, 16, 16)).shape == (1, 3, 24, 40)
    with pytest.raises(ValueError, match='multiples of 8'):
        net(torch.rand(1, 3, 37, 53), torch.randn(1, 16, 16))
    with pytest.raises(ValueError, match='prior of shape'):
        net(torch.rand(1, 3, 24, 40), None)
    with pytest.raises(ValueError, match='divisible by 4'):
        HIDiffTransformer(prior_tokens=10)


def test_zero_init_output_starts_as_identity():
    net = HIDiffTransformer(dim=8, num_blocks=[1, 1, 1, 1], num_refinement_blocks=1,
                            prior_channels=16, zero_init_output=True)
    img = torch.rand(1, 3, 16, 16)
    assert torch.equal(net(img, torch.randn(1, 16, 16)), img)


def test_latent_encoder_stage_checks_and_sharp_first():
    enc = HIDiffLatentEncoder(in_channels=6, embed_dim=8, num_blocks=1)
    blur, sharp = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16)
    assert enc(blur, sharp).shape == (1, 16, 32)
    assert not torch.allclose(enc(blur, sharp), enc(sharp, blur))
    with pytest.raises(ValueError, match='needs the sharp image'):
        enc(blur)
    with pytest.raises(ValueError, match='takes no sharp image'):
        HIDiffLatentEncoder(in_channels=3, embed_dim=8)(blur, sharp)


def test_denoisers_time_inputs():
    mixer = HIDiffMixerDenoiser(prior_channels=8, inner_channels=16, time_scale_init=0.5)
    mlp = HIDiffMLPDenoiser(prior_channels=8, num_layers=1).double()
    mixer.double()
    z, c = torch.randn(2, 16, 8).double(), torch.randn(2, 16, 8).double()
    for net in (mixer, mlp):
        out0, out3 = net(z, c, torch.tensor([0, 0])), net(z, c, torch.tensor([3, 3]))
        assert out0.shape == z.shape and not torch.allclose(out0, out3)
        # each sample uses its own step
        mixed = net(z, c, torch.tensor([0, 3]))
        assert torch.allclose(mixed[0], out0[0]) and torch.allclose(mixed[1], out3[1])
    # the MLP denoiser sees t / 50 as an extra input column between c and z_t
    layer = mlp.resmlp[0]
    h = torch.cat([c, torch.full((2, 16, 1), 3 / 50.), z], -1) @ layer.weight.T + layer.bias
    h = torch.nn.functional.leaky_relu(h, 0.1)
    h = torch.nn.functional.leaky_relu(mlp.resmlp[2].resmlp[0](h), 0.1)
    assert torch.allclose(mlp(z, c, torch.tensor([3, 3])), h, rtol=0, atol=1e-12)  # float64
