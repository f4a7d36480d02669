"""The fast forms equal the exact (official-style) forms: values, gradients, row strips, layouts.

The equivalence test is generated from ``FAST_FORMS``, the one list of (exact, fast) pairs that
``convert_to_fast`` uses: a pair without an example here fails ``test_every_pair_has_examples``.
"""
import copy
from typing import Callable, Dict, List, Tuple

import pytest
import torch
from torch import nn

from hidiff_mm.models.backbones import GDFN, MDTA, HIDiffTransformer, HIDiffTransformerBlock
from hidiff_mm.models.layers import (FAST_FORMS, HIM, HIDiffLayerNorm, convert_for_device,
                                     convert_to_exact, convert_to_fast)
from hidiff_mm.models.layers.fast_path import DEFAULT_STRIP_PIXELS, conv_rows, row_strips
from hidiff_mm.models.mixing import PriorGuidedBackbone

TOL = 1e-5
FAST_CLASSES = {fast for _, fast in FAST_FORMS}


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
    for convert in (convert_to_exact, convert_to_fast):
        outs.append(convert(module)(*args))
    return outs


def assert_close(a: torch.Tensor, b: torch.Tensor, tol: float = TOL) -> None:
    assert a.shape == b.shape
    err = (a - b).abs().max().item()
    assert err <= tol * max(1.0, a.abs().max().item()), f'max abs difference {err:.3g}'


def tiny_transformer(**kwargs) -> HIDiffTransformer:
    return HIDiffTransformer(dim=8, num_blocks=(1, 1, 1, 1), num_refinement_blocks=1,
                             heads=(1, 2, 2, 4), prior_channels=16, prior_tokens=8, **kwargs)


def maybe(channels):
    return None if channels is None else torch.randn(2, channels)


# Examples per exact class: (module factory, inputs factory). Each pair of FAST_FORMS needs one.
Example = Tuple[Callable[[], nn.Module], Callable[[], tuple]]
EXAMPLES: Dict[type, List[Example]] = {
    HIDiffLayerNorm: [
        *[(lambda t=t: HIDiffLayerNorm(12, t), lambda: (torch.randn(2, 12, 5, 7) * 3 + 1, ))
          for t in ('WithBias', 'BiasFree')],
        (lambda: HIDiffLayerNorm(12), lambda: (torch.randn(2, 9, 12), )),
    ],
    MDTA: [(lambda h=h, b=b, p=p: MDTA(16, h, b, p),
            lambda p=p: (torch.randn(2, 16, 6, 10), maybe(p)))
           for h, b, p in [(1, False, None), (2, True, None), (4, False, 6)]],
    GDFN: [(lambda b=b, p=p: GDFN(10, 2.66, b, p),
            lambda p=p: (torch.randn(2, 10, 7, 5), maybe(p)))
           for b, p in [(False, None), (True, 6)]],
    HIM: [(lambda h=h, b=b: HIM(16, h, prior_channels=12, bias=b),
           lambda: (torch.randn(2, 16, 5, 6), torch.randn(2, 8, 12)))
          for h, b in [(1, False), (2, True), (4, False)]],
    HIDiffTransformer: [(lambda: tiny_transformer(fast_path=False),
                         lambda: (torch.rand(2, 3, 16, 24), torch.randn(2, 8, 16)))],
}


def test_every_pair_has_examples():
    assert [fast.__name__ for _, fast in FAST_FORMS] and all(
        fast.__name__.startswith('Fast') for fast in FAST_CLASSES)
    assert set(EXAMPLES) == {exact for exact, _ in FAST_FORMS}, \
        'every (exact, fast) pair in FAST_FORMS needs an example in EXAMPLES'


@pytest.mark.parametrize('exact_cls,fast_cls', FAST_FORMS,
                         ids=[exact.__name__ for exact, _ in FAST_FORMS])
def test_fast_form_equals_exact(exact_cls, fast_cls):
    """Same state dict, same outputs and gradients (float32, to TOL and 1e-4), and back."""
    for seed, (build, inputs) in enumerate(EXAMPLES[exact_cls]):
        torch.manual_seed(seed)
        exact = randomise(build(), seed)
        assert type(exact) is exact_cls
        fast = convert_to_fast(copy.deepcopy(exact))
        assert type(fast) is fast_cls
        state, fast_state = exact.state_dict(), fast.state_dict()
        assert list(state) == list(fast_state)
        assert all(torch.equal(state[k], fast_state[k]) for k in state)
        args = inputs()
        outs = [module(*args) for module in (exact, fast)]
        assert_close(*outs)
        for out in outs:
            out.square().mean().backward()
        for (name, p), q in zip(exact.named_parameters(), fast.parameters()):
            assert_close(p.grad, q.grad, 1e-4)
        back = convert_to_exact(fast)
        assert type(back) is exact_cls
        assert not FAST_CLASSES & {type(m) for m in back.modules()}
        with torch.no_grad():
            assert torch.equal(back(*args), exact(*args))


def test_layer_norm_map_layout():
    norm = convert_to_fast(randomise(HIDiffLayerNorm(12)))
    assert norm(torch.randn(2, 12, 5, 7)).is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize('branch', [lambda: MDTA(16, 4, False, 6), lambda: GDFN(16, 2.66, True, 6)],
                         ids=['MDTA', 'GDFN'])
def test_fused_residual_equals_norm_then_add(branch):
    """The fast ``forward_residual`` normalises and adds inside its GEMMs."""
    module = randomise(branch())
    x, prior = torch.randn(2, 16, 6, 10), torch.randn(2, 6)
    norm = randomise(HIDiffLayerNorm(16), seed=1)
    expected = x + module(norm(x), prior)
    convert_to_fast(module), convert_to_fast(norm)
    assert_close(module.forward_residual(x, norm, prior), expected)


def test_him_keeps_the_input_layout():
    him = convert_to_fast(randomise(HIM(16, 2, prior_channels=12)))
    x, prior = torch.randn(2, 16, 5, 6), torch.randn(2, 8, 12)
    assert him(x, prior).is_contiguous()  # an NCHW input keeps its layout (mixing)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    assert him(x_cl, prior).is_contiguous(memory_format=torch.channels_last)


def test_strips_equal_one_pass_and_bound_memory():
    """Row strips (no autograd) give the one-pass result, including a 1-row last strip."""
    block = randomise(HIDiffTransformerBlock(8, 2, 2.66, True, prior_channels=4))
    x, prior = torch.randn(1, 8, 13, 6), torch.randn(1, 4)
    with torch.no_grad():
        whole = convert_to_fast(block)(x, prior)
        convert_to_fast(block, strip_pixels=12)  # 2 rows a strip: 7 strips, the last 1 row
        assert block.attn.strip_pixels == block.ffn.strip_pixels == 12
        assert len(row_strips(13, 6, 12, grad=False)) == 7
        strips = block(x, prior)
        exact = convert_to_exact(block)(x, prior)
    assert 'strip_pixels' not in vars(block.attn)
    assert_close(whole, strips)
    assert_close(exact, strips)


def test_strips_batch_of_two():
    block = randomise(HIDiffTransformerBlock(8, 2, 2.0, False))
    x = torch.randn(2, 8, 9, 4)
    with torch.no_grad():
        whole = convert_to_fast(block, strip_pixels=1 << 17)(x)
        assert_close(whole, convert_to_fast(block, strip_pixels=8)(x))


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
        convert_to_fast(conv, strip_pixels=0)


def test_transformer_switch_and_output_layout():
    net = randomise(tiny_transformer(fast_path=False), seed=5)
    assert not FAST_CLASSES & {type(m) for m in net.modules()}
    img, prior = torch.rand(1, 3, 24, 16), torch.randn(1, 8, 16)
    with torch.no_grad():
        exact, fast = both_paths(net, img, prior)
    kinds = {type(m) for m in net.modules()}
    assert {fast for _, fast in FAST_FORMS} <= kinds and not {e for e, _ in FAST_FORMS} & kinds
    assert_close(exact, fast)
    assert fast.is_contiguous()  # callers get a standard NCHW tensor back


def forms(module: nn.Module) -> set:
    """'fast' and/or 'exact': the forms of the modules of ``module`` that have two."""
    kinds = {type(m) for m in module.modules()}
    return ({'fast'} if kinds & FAST_CLASSES else set()) | \
        ({'exact'} if kinds & {e for e, _ in FAST_FORMS} else set())


def test_forms_change_only_by_an_explicit_conversion():
    """A network is built exact; ``convert_for_device`` gives the form its setting asks for
    ('cpu', the default: fast on the CPU, exact elsewhere, docs/performance.md); moving a model
    never changes its form; ``convert_to_fast`` / ``convert_to_exact`` pin one."""
    net = tiny_transformer()
    assert net.fast_path == 'cpu' and forms(net) == {'exact'}
    assert type(net).forward is HIDiffTransformer.forward  # the code you read is what runs
    convert_for_device(net)
    assert forms(net) == {'fast'}
    assert net.strip_pixels == net.encoder_level1.blocks[0].attn.strip_pixels == \
        DEFAULT_STRIP_PIXELS
    for move in (lambda m: m.to('meta'), lambda m: m.to_empty(device='cpu'),
                 lambda m: m.double(), lambda m: m.float()):
        move(net)
        assert forms(net) == {'fast'}
    assert forms(convert_for_device(net, 'meta')) == {'exact'}  # not the CPU: another device
    assert forms(convert_for_device(net.to('meta'))) == {'exact'}  # where the parameters are
    assert forms(convert_for_device(net, 'cpu')) == {'fast'}
    convert_to_exact(net)
    assert net.fast_path is False and forms(convert_for_device(net, 'cpu')) == {'exact'}
    convert_to_fast(net, strip_pixels=64)
    assert net.fast_path is True and net.strip_pixels == 64
    assert forms(convert_for_device(net, 'meta')) == {'fast'}
    assert net.latent.blocks[0].ffn.strip_pixels == 64
    assert forms(convert_for_device(tiny_transformer(fast_path=True), 'meta')) == {'fast'}
    assert forms(convert_for_device(tiny_transformer(fast_path=False))) == {'exact'}
    with pytest.raises(ValueError, match='fast_path'):
        tiny_transformer(fast_path='cuda')


def test_print_names_the_form():
    """``print(model)`` shows which form runs: the class names and each network's setting."""
    net = tiny_transformer()
    text = repr(net)
    assert text.startswith("HIDiffTransformer(\n  fast_path='cpu', form=exact\n")
    assert 'FastMDTA' not in text and 'MDTA(' in text
    text = repr(convert_for_device(nn.Sequential(net)))
    assert "FastHIDiffTransformer(\n    fast_path='cpu', form=fast\n" in text
    assert 'FastMDTA(' in text


def test_prior_guided_backbone_follows_the_setting():
    """The HIMs that PriorGuidedBackbone inserts into another backbone carry the same switch."""
    backbone = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 3, 3, padding=1))
    wrapped = PriorGuidedBackbone(backbone, insert_after=['0'], prior_channels=16,
                                  prior_tokens=4, num_heads=2, probe_size=8)
    assert forms(wrapped) == {'exact'}
    assert forms(convert_for_device(wrapped)) == {'fast'} and 'form=fast' in repr(wrapped)
    assert forms(convert_for_device(wrapped, 'meta')) == {'exact'}
    assert forms(convert_for_device(PriorGuidedBackbone(
        copy.deepcopy(backbone), insert_after=['0'], prior_channels=16, prior_tokens=4,
        probe_size=8, fast_path=False))) == {'exact'}


def test_autocast_keeps_the_residual_stream_fp32():
    """Under bf16 autocast the fused residual GEMMs would round the residual to bf16; the fast
    path adds it outside the GEMM instead, like the exact path's ``x + f(x)``."""
    block = randomise(HIDiffTransformerBlock(8, 2, prior_channels=4))
    x, prior = torch.randn(1, 8, 8, 8), torch.randn(1, 4)
    with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):
        exact, fast = both_paths(block, x, prior)
        strips = convert_to_fast(block, strip_pixels=16)(x, prior)
    assert exact.dtype == fast.dtype == strips.dtype == torch.float32
    assert_close(exact, fast, 5e-2)
    assert_close(fast, strips, 5e-2)


def test_grams_of_half_inputs_do_not_overflow():
    """Unnormalised q k^T sums over all pixels; in fp16 it would pass 65504, so it runs in fp32."""
    mdta = convert_to_fast(MDTA(8, 2))
    q = torch.full((1, 64, 8), 40.0)  # |q|^2 = 64 * 1600 = 102400 > 65504
    qk, qq, kk = mdta._head_grams(q.half(), q.half())
    assert qk.dtype == torch.float32 and torch.isfinite(qk).all()
    assert torch.allclose(qq, torch.full_like(qq, 102400.0))
