"""tools/analysis/get_flops.py: MAC counting by hand, parts adding up, parameter counts."""
import copy
import importlib.util
import json
from pathlib import Path

import pytest
import torch
from torch import nn

import hidiff_mm  # noqa: F401  (compatibility layer, registers the HI-Diff modules)
from hidiff_mm.utils.errors import ConfigError

TOOL = Path(__file__).resolve().parents[1] / 'tools' / 'analysis' / 'get_flops.py'

TINY_CONFIG = """
default_scope = 'mmagic'
custom_imports = dict(imports=['hidiff_mm'], allow_failed_imports=False)
model = dict(
    type='HIDiff',
    generator=dict(type='HIDiffTransformer', dim=8, num_blocks=[1, 1, 1, 1],
                   num_refinement_blocks=1, prior_channels=32, prior_tokens=16),
    prior_head=dict(
        type='LatentPriorHead',
        encoder_s1=dict(type='HIDiffLatentEncoder', in_channels=6, embed_dim=8, num_blocks=2),
        encoder_s2=dict(type='HIDiffLatentEncoder', in_channels=3, embed_dim=8, num_blocks=2),
        denoiser=dict(type='HIDiffMixerDenoiser', prior_channels=32, inner_channels=16),
        scheduler=dict(type='HIDiffScheduler', num_train_timesteps={steps})),
    data_preprocessor=dict(type='DataPreprocessor', mean=[0., 0., 0.], std=[255., 255., 255.]))
"""


@pytest.fixture(scope='module')
def tool():
    spec = importlib.util.spec_from_file_location('hidiff_get_flops_tool', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def tiny_config(tmp_path_factory):
    path = tmp_path_factory.mktemp('get_flops') / 'tiny_hidiff.py'
    path.write_text(TINY_CONFIG.format(steps=3))
    return str(path)


@pytest.fixture(scope='module')
def tiny_model(tool, tiny_config):
    return tool.build_model(tiny_config)


def test_count_macs_by_hand(tool):
    torch.manual_seed(0)
    toy = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),             # 8 * 3 * 3 * 3 * 16 * 16 = 55,296
        nn.Conv2d(8, 8, 3, padding=1, groups=8),   # 8 * 1 * 3 * 3 * 16 * 16 = 18,432
        nn.Conv2d(8, 4, 1, bias=False),            # 4 * 8 * 16 * 16        =  8,192
        nn.Flatten(),
        nn.Linear(4 * 16 * 16, 10))                # 1024 * 10              = 10,240
    x = torch.rand(1, 3, 16, 16)
    assert tool.count_macs(toy, x) == 55296 + 18432 + 8192 + 10240
    # batch matmul: (2, 4, 5) @ (2, 5, 6) -> 2 * 4 * 5 * 6 MACs
    a, b = torch.rand(2, 4, 5), torch.rand(2, 5, 6)
    assert tool.count_macs(torch.matmul, a, b) == 240
    # element-wise work and norms are not counted
    assert tool.count_macs(nn.Sequential(nn.LayerNorm(5), nn.GELU()), a) == 0
    assert tool.count_params(toy) == sum(p.numel() for p in toy.parameters())
    assert tool.count_params(None) == 0


def test_parse_shape(tool):
    assert tool.parse_shape([64]) == (3, 64, 64)
    assert tool.parse_shape([720, 1280]) == (3, 720, 1280)
    assert tool.parse_shape([3, 32, 48]) == (3, 32, 48)
    with pytest.raises(ValueError):
        tool.parse_shape([1, 2, 3, 4])


@pytest.mark.parametrize('shape', [(3, 32, 32), (3, 30, 34)])
def test_parts_add_up(tool, tiny_model, shape):
    report = tool.hidiff_complexity(tiny_model, shape)
    parts = report['parts']
    head = tiny_model.prior_head
    assert report['steps'] == 3
    assert report['padded_shape'] == (3, 32, 32 if shape[2] == 32 else 40)
    assert parts['denoiser_all']['macs'] == 3 * parts['denoiser_step']['macs'] > 0
    total = parts['total']
    assert total['macs'] == (parts['generator']['macs'] + parts['encoder_s2']['macs'] +
                             parts['denoiser_all']['macs'])
    # the whole blind prediction, counted in one go, equals the sum of the parts
    assert report['measured_total_macs'] == total['macs']
    # parameter counts are plain sums, and the parts partition the editor's parameters
    expected = {
        'generator': tiny_model.generator,
        'encoder_s2': head.encoder_s2,
        'denoiser_step': head.denoiser,
        'encoder_s1': head.encoder_s1,
    }
    for key, module in expected.items():
        assert parts[key]['params'] == sum(p.numel() for p in module.parameters())
    assert total['params'] == sum(parts[k]['params']
                                  for k in ('generator', 'encoder_s2', 'denoiser_step'))
    assert total['params'] + parts['encoder_s1']['params'] == sum(
        p.numel() for p in tiny_model.parameters())
    assert not parts['encoder_s1']['in_total']


def test_counts_the_exact_model(tool, tiny_config):
    """The counts are the exact (official) form's, also for a model in its fast form, whose
    folded products differ."""
    from hidiff_mm.models.layers import convert_to_exact, convert_to_fast
    model = convert_to_fast(tool.build_model(tiny_config))
    exact_g = convert_to_exact(copy.deepcopy(model.generator)).eval()
    fast_g = convert_to_fast(copy.deepcopy(model.generator)).eval()
    img, prior = torch.rand(1, 3, 32, 32), torch.randn(1, 16, 32)
    exact_macs, fast_macs = (tool.count_macs(g, img, prior) for g in (exact_g, fast_g))
    assert exact_macs != fast_macs
    report = tool.hidiff_complexity(model, (3, 32, 32))
    assert report['parts']['generator']['macs'] == exact_macs
    assert report['measured_total_macs'] == report['parts']['total']['macs']


def test_steps_override(tool, tiny_model):
    report = tool.hidiff_complexity(tiny_model, (3, 32, 32), steps=2)
    parts = report['parts']
    assert parts['denoiser_all']['macs'] == 2 * parts['denoiser_step']['macs']
    assert report['measured_total_macs'] == parts['total']['macs']  # the same 2-step prediction
    with pytest.raises(ValueError, match='num_inference_steps'):
        tool.hidiff_complexity(tiny_model, (3, 32, 32), steps=5)  # the scheduler has T = 3


def test_cli(tool, tiny_config, capsys):
    report = tool.main([tiny_config, '--shape', '3', '32', '32'])
    out = capsys.readouterr().out
    assert 'inference total' in out and 'matches the sum of the parts' in out
    assert f"{report['parts']['total']['params']:,}" in out
    tool.main([tiny_config, '--shape', '32', '--steps', '2', '--json'])
    loaded = json.loads(capsys.readouterr().out)
    assert loaded['steps'] == 2
    assert loaded['parts']['denoiser_all']['macs'] == 2 * loaded['parts']['denoiser_step']['macs']


def test_not_hidiff(tool):
    with pytest.raises(ConfigError, match='HIDiff'):
        tool.hidiff_complexity(nn.Conv2d(3, 3, 1), (3, 8, 8))


def test_gopro_param_counts(tool):
    """The default (GoPro) model has the official parameter counts (no forward pass)."""
    from mmagic.registry import MODELS
    model = MODELS.build(
        dict(type='HIDiff', generator=dict(type='HIDiffTransformer'),
             prior_head=dict(type='LatentPriorHead')))
    head = model.prior_head
    assert tool.count_params(model.generator) == 25_298_923
    assert tool.count_params(head.encoder_s1) == 585_688
    assert tool.count_params(head.encoder_s2) == 558_040
    assert tool.count_params(head.denoiser) == 2_629_937
    inference = sum(tool.count_params(m) for m in (model.generator, head.encoder_s2, head.denoiser))
    assert inference == 28_486_900
