"""bf16 prediction's building blocks: the CPU detection, the bf16 copy and the Transformer in bf16.

Tolerances: bf16 keeps 8 significant bits, so one rounding changes a value by at most
``eps / 2 * |value|`` with ``eps = 2**-8``. A layer rounds its output (and its weights) once;
the Transformer's output gathers the roundings of the ``steps`` layers on its path (every
convolution, linear layer and layer norm), each relative to the magnitude of what the network
computes (``|output - input|``: the global residual is added in fp32). Independent roundings
add like a random walk, ``eps / 2 * magnitude * sqrt(steps)`` in the typical case, so the test
allows ``eps * magnitude * sqrt(steps)``: twice that, for the tail of the largest element.
(Measured on the tiny model: 0.2 of it; the linear worst case ``steps`` would allow 50 times
the error that was seen.)
"""
import os
import subprocess
import sys

import pytest
import torch
from torch import nn

from hidiff_mm.models.backbones import HIDiffTransformer
from hidiff_mm.models.layers import bf16, convert_to_exact, convert_to_fast
from hidiff_mm.models.layers.bf16 import Bf16Copy, bf16_unsupported_reason, cpu_bf16_feature

EPS = 2.0**-8


def tiny_transformer() -> HIDiffTransformer:
    torch.manual_seed(0)
    return HIDiffTransformer(dim=8, num_blocks=(1, 1, 1, 1), num_refinement_blocks=1,
                             heads=(1, 2, 2, 4), prior_channels=16, prior_tokens=8).eval()


def rounded_steps(net: nn.Module) -> int:
    """Layers whose output is rounded to bf16: every convolution, linear layer and norm."""
    return sum(isinstance(m, (nn.Conv2d, nn.Linear, nn.LayerNorm)) or
               type(m).__name__ == '_LayerNormBody' for m in net.modules())


@pytest.mark.parametrize('flags, unit', [({'avx512_bf16'}, 'AVX512-BF16'),
                                         ({'amx_bf16', 'avx512_bf16'}, 'AMX-BF16')])
def test_detection_names_the_best_unit(monkeypatch, flags, unit):
    monkeypatch.setattr(bf16, 'cpu_flags', lambda: frozenset(flags | {'avx512f'}))
    monkeypatch.delenv('ONEDNN_MAX_CPU_ISA', raising=False)
    monkeypatch.delenv('DNNL_MAX_CPU_ISA', raising=False)
    found, why = cpu_bf16_feature()
    assert found == unit and why.startswith(unit) and 'ATen kernels' in why
    assert bf16_unsupported_reason(torch.device('cpu')) is None


def test_detection_without_bf16_units(monkeypatch):
    monkeypatch.setattr(bf16, 'cpu_flags', lambda: frozenset({'avx2', 'avx512f', 'fma'}))
    found, why = cpu_bf16_feature()
    assert found is None
    assert bf16_unsupported_reason(torch.device('cpu')) == why
    assert 'no bf16 units' in why and '\n' not in why


@pytest.mark.parametrize('limit, unit', [('AVX512_CORE', None), ('avx2', None),
                                         ('AVX512_CORE_BF16', 'AVX512-BF16'),
                                         ('AVX512_CORE_AMX', 'AMX-BF16')])
def test_onednn_isa_limit(monkeypatch, limit, unit):
    monkeypatch.setattr(bf16, 'cpu_flags', lambda: frozenset({'amx_bf16', 'avx512_bf16'}))
    monkeypatch.setenv('ONEDNN_MAX_CPU_ISA', limit)
    found, why = cpu_bf16_feature()
    assert found == unit
    if unit is None:
        assert f'ONEDNN_MAX_CPU_ISA={limit.upper()}' in why


def test_without_onednn(monkeypatch):
    monkeypatch.setattr(bf16, 'cpu_flags', lambda: frozenset({'avx512_bf16'}))
    monkeypatch.setattr(torch.backends.mkldnn, 'is_available', lambda: False)
    assert 'oneDNN' in cpu_bf16_feature()[1]


def test_real_environment_limits():
    """In fresh processes: ``ONEDNN_MAX_CPU_ISA=AVX2`` always means fp32; under
    ``ATEN_CPU_CAPABILITY=default`` (ATen's element-wise kernels without SIMD) a CPU with bf16
    units still runs bf16 (its GEMMs and convolutions are oneDNN's) and the line says which
    ATen kernels it has."""
    code = ('from hidiff_mm.models.layers.bf16 import cpu_bf16_feature, cpu_flags;'
            'print(repr(cpu_bf16_feature()), "avx512_bf16" in cpu_flags())')
    env = {k: v for k, v in os.environ.items()
           if k not in ('ONEDNN_MAX_CPU_ISA', 'DNNL_MAX_CPU_ISA', 'ATEN_CPU_CAPABILITY')}

    def run(**extra):
        out = subprocess.run([sys.executable, '-c', code], env=dict(env, **extra), check=True,
                             capture_output=True, text=True).stdout.strip().splitlines()[-1]
        found, has_units = out.rsplit(' ', 1)
        return eval(found), has_units == 'True'

    (unit, why), _ = run(ONEDNN_MAX_CPU_ISA='AVX2')
    assert unit is None
    (unit, why), has_units = run(ATEN_CPU_CAPABILITY='default')
    assert (unit is not None) == has_units
    if has_units:
        assert 'ATen kernels: DEFAULT' in why


def test_bf16_copy_is_made_once_and_again_after_the_weights_change():
    net = tiny_transformer()
    holder = Bf16Copy()
    first = holder.get(net)
    assert first is not net and holder.get(net) is first
    assert all(p.dtype == torch.bfloat16 and not p.requires_grad for p in first.parameters())
    assert all(p.dtype == torch.float32 for p in net.parameters())
    with torch.no_grad():
        net.output.weight.mul_(2)  # an optimizer step, in place
    second = holder.get(net)
    assert second is not first
    assert torch.equal(second.output.weight, net.output.weight.to(torch.bfloat16))
    assert holder.get(tiny_transformer()) is not second  # another network


@pytest.mark.parametrize('form', [convert_to_fast, convert_to_exact])
@pytest.mark.parametrize('size', [(16, 24), (24, 40)])
def test_transformer_in_bf16_is_fp32_within_rounding(form, size):
    """Both forms, and the fast form in row strips (24x40 with 256-pixel strips)."""
    net = form(tiny_transformer())
    if form is convert_to_fast:
        convert_to_fast(net, strip_pixels=256)
    img = torch.rand(2, 3, *size)
    prior = torch.randn(2, 8, 16)
    low = Bf16Copy().get(net)
    with torch.no_grad():
        ref, got = net(img, prior), low(img, prior)
    assert got.dtype == torch.float32 and got.shape == ref.shape
    magnitude = (ref - img).abs().max().item()
    err = (got - ref).abs().max().item()
    assert 0 < err <= EPS * magnitude * rounded_steps(net)**0.5, (err, magnitude)
