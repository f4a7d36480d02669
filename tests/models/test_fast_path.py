"""The fast path equals the exact (official-style) path: values, gradients, row strips, layouts."""
import copy

import pytest
import torch

from hidiff_mm.models.backbones import GDFN, MDTA, HIDiffTransformer, HIDiffTransformerBlock
from hidiff_mm.models.layers import HIM, HIDiffLayerNorm, set_fast_path
from hidiff_mm.models.layers.fast_path import conv_rows, row_strips

TOL = 1e-5


def randomise(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Non-trivial parameters everywhere (norm weights != 1, biases != 0, temperatures != 1)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.rand(p.shape, generator=gen) * 0.5 + 0.5 if p.dim() == 1 or
                    p.shape[-2:] == (1, 1) and p.dim() == 3 else
                    torch.randn(p.shape, generator=gen) * p.shape[-1]**-0.5)
    return module


def both_paths(module: torch.nn.Module, *args):
    """(exact output, fast output) of the same module on the same inputs."""
    outs = []
    for fast in (False, True):
        set_fast_path(module, fast)
        outs.append(module(*args))
    return outs


def assert_close(a: torch.Tensor, b: torch.Tensor, tol: float = TOL) -> None:
    assert a.shape == b.shape
    err = (a - b).abs().max().item()
    assert err <= tol * max(1.0, a.abs().max().item()), f'max abs difference {err:.3g}'


@pytest.mark.parametrize('norm_type', ['WithBias', 'BiasFree'])
def test_layer_norm_maps_and_tokens(norm_type):
    norm = randomise(HIDiffLayerNorm(12, norm_type))
    x = torch.randn(2, 12, 5, 7) * 3 + 1
    exact, fast = both_paths(norm, x)
    assert_close(exact, fast)
    assert fast.is_contiguous(memory_format=torch.channels_last)
    tokens = torch.randn(2, 9, 12)
    assert_close(*both_paths(norm, tokens))


@pytest.mark.parametrize('heads,bias,prior_channels', [(1, False, None), (2, True, None),
                                                       (4, False, 6)])
def test_mdta_matches_exact(heads, bias, prior_channels):
    mdta = randomise(MDTA(16, heads, bias, prior_channels))
    x = torch.randn(2, 16, 6, 10)
    prior = None if prior_channels is None else torch.randn(2, prior_channels)
    assert_close(*both_paths(mdta, x, prior))
    set_fast_path(mdta, True)
    norm = randomise(HIDiffLayerNorm(16), seed=1)
    assert_close(mdta.forward_residual(x, norm, prior), x + mdta(norm(x), prior))


@pytest.mark.parametrize('bias,prior_channels', [(False, None), (True, 6)])
def test_gdfn_matches_exact(bias, prior_channels):
    gdfn = randomise(GDFN(10, 2.66, bias, prior_channels))
    x = torch.randn(2, 10, 7, 5)
    prior = None if prior_channels is None else torch.randn(2, prior_channels)
    assert_close(*both_paths(gdfn, x, prior))
    set_fast_path(gdfn, True)
    norm = randomise(HIDiffLayerNorm(10), seed=1)
    assert_close(gdfn.forward_residual(x, norm, prior), x + gdfn(norm(x), prior))


@pytest.mark.parametrize('heads,bias', [(1, False), (2, True), (4, False)])
def test_him_folded_matches_exact(heads, bias):
    him = randomise(HIM(16, heads, prior_channels=12, bias=bias))
    x, prior = torch.randn(2, 16, 5, 6), torch.randn(2, 8, 12)
    exact, fast = both_paths(him, x, prior)
    assert_close(exact, fast)
    assert fast.is_contiguous()  # an NCHW input keeps its layout (mixing into other backbones)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    assert him(x_cl, prior).is_contiguous(memory_format=torch.channels_last)


def test_strips_equal_one_pass_and_bound_memory():
    """Row strips (no autograd) give the one-pass result, including a 1-row last strip."""
    block = randomise(HIDiffTransformerBlock(8, 2, 2.66, True, prior_channels=4))
    x, prior = torch.randn(1, 8, 13, 6), torch.randn(1, 4)
    set_fast_path(block, True)
    with torch.no_grad():
        whole = block(x, prior)
        set_fast_path(block, True, strip_pixels=12)  # 2 rows a strip: 7 strips, the last 1 row
        assert len(row_strips(13, 6, 12, grad=False)) == 7
        strips = block(x, prior)
        set_fast_path(block, False)
        exact = block(x, prior)
    assert_close(whole, strips)
    assert_close(exact, strips)


def test_strips_batch_of_two():
    block = randomise(HIDiffTransformerBlock(8, 2, 2.0, False))
    x = torch.randn(2, 8, 9, 4)
    with torch.no_grad():
        set_fast_path(block, True, strip_pixels=1 << 17)
        whole = block(x)
        set_fast_path(block, True, strip_pixels=8)
        assert_close(whole, block(x))


def test_row_strips_and_conv_rows():
    assert row_strips(10, 4, 1000, grad=False) == [(0, 10)]
    assert row_strips(10, 4, 12, grad=True) == [(0, 10)]  # autograd: one pass
    strips = row_strips(10, 4, 12, grad=False)
    assert strips == [(0, 3), (3, 6), (6, 9), (9, 10)]
    assert row_strips(5, 100, 10, grad=False) == [(r, r + 1) for r in range(5)]  # >= 1 row
    conv = torch.nn.Conv2d(3, 3, 3, padding=1, groups=3)
    x = torch.randn(1, 3, 10, 4)
    with torch.no_grad():
        full = conv(x)
        for r0, r1 in strips:
            assert torch.allclose(conv_rows(x, conv, r0, r1), full[:, :, r0:r1], atol=1e-6)
    with pytest.raises(ValueError, match='strip_pixels'):
        set_fast_path(conv, True, strip_pixels=0)


def test_gradients_match_exact():
    net = HIDiffTransformer(dim=8, num_blocks=(1, 1, 1, 1), num_refinement_blocks=1,
                            heads=(1, 2, 2, 4), prior_channels=16, prior_tokens=8)
    randomise(net, seed=3)
    twin = copy.deepcopy(net)
    set_fast_path(net, True)
    set_fast_path(twin, False)
    img, prior = torch.rand(2, 3, 16, 24), torch.randn(2, 8, 16)
    for model in (net, twin):
        model(img, prior).square().mean().backward()
    for (name, p), q in zip(net.named_parameters(), twin.parameters()):
        assert_close(p.grad, q.grad, 1e-4)


def test_transformer_switch_and_output_layout():
    net = HIDiffTransformer(dim=8, num_blocks=(1, 1, 1, 1), num_refinement_blocks=1,
                            heads=(1, 2, 2, 4), prior_channels=16, prior_tokens=8,
                            fast_path=False)
    assert not any(getattr(m, 'fast_path', False) for m in net.modules())
    randomise(net, seed=5)
    img, prior = torch.rand(1, 3, 24, 16), torch.randn(1, 8, 16)
    with torch.no_grad():
        exact, fast = both_paths(net, img, prior)
    assert all(m.fast_path for m in net.modules() if hasattr(m, 'fast_path'))
    assert_close(exact, fast)
    assert fast.is_contiguous()  # callers get a standard NCHW tensor back


def test_autocast_keeps_the_residual_stream_fp32():
    """Under bf16 autocast the fused residual GEMMs would round the residual to bf16; the fast
    path adds it outside the GEMM instead, like the exact path's ``x + f(x)``."""
    block = randomise(HIDiffTransformerBlock(8, 2, prior_channels=4))
    x, prior = torch.randn(1, 8, 8, 8), torch.randn(1, 4)
    with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):
        exact, fast = both_paths(block, x, prior)
        set_fast_path(block, True, strip_pixels=16)
        strips = block(x, prior)
    assert exact.dtype == fast.dtype == strips.dtype == torch.float32
    assert_close(exact, fast, 5e-2)
    assert_close(fast, strips, 5e-2)


def test_fast_path_is_a_cpu_path():
    """Other devices run the exact forwards (measured faster on CUDA, docs/performance.md)."""
    from hidiff_mm.models.layers.fast_path import use_fast
    mdta = MDTA(8, 2)
    assert use_fast(mdta, torch.zeros(1))
    assert not use_fast(mdta, torch.zeros(1, device='meta'))
    set_fast_path(mdta, False)
    assert not use_fast(mdta, torch.zeros(1))


def test_grams_of_half_inputs_do_not_overflow():
    """Unnormalised q k^T sums over all pixels; in fp16 it would pass 65504, so it runs in fp32."""
    mdta = MDTA(8, 2)
    t = torch.full((64, 24), 40.0)  # |q|^2 = 64 * 1600 = 102400 > 65504
    qk, qq, kk = mdta._head_grams(t.half())
    assert qk.dtype == torch.float32 and torch.isfinite(qk).all()
    assert torch.allclose(qq, torch.full_like(qq, 102400.0))
