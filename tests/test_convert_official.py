"""tools/convert_official_checkpoint.py on files written in the official release format."""
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmagic.registry import MODELS
from mmengine.config import Config

import hidiff_mm  # noqa: F401  (registers the HI-Diff modules)

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TOOL = osp.join(REPO, 'tools', 'convert_official_checkpoint.py')
PREFIX = {'net_g': 'generator.', 'net_le': 'prior_head.encoder_s1.',
          'net_le_dm': 'prior_head.encoder_s2.', 'net_d': 'prior_head.denoiser.'}


def tiny_config(tmp_path, realblur=False) -> str:
    base = 'hidiff_realblur' if realblur else 'hidiff_gopro'
    path = tmp_path / 'tiny.py'
    inner = '' if realblur else ', inner_channels=16'
    path.write_text(f'''
_base_ = {osp.join(REPO, 'configs', '_base_', 'models', base + '.py')!r}
model = dict(
    generator=dict(dim=8, num_blocks=[1, 1, 1, 1], num_refinement_blocks=1, prior_channels=16),
    prior_head=dict(encoder_s1=dict(embed_dim=4, num_blocks=1),
                    encoder_s2=dict(embed_dim=4, num_blocks=1),
                    denoiser=dict(prior_channels=16{inner})))
''')
    return str(path)


def write_official(tmp_path, model, roles, module_prefix=False):
    """Split an editor state dict into official BasicSR files, named unhelpfully."""
    state = model.state_dict()
    paths = []
    for i, role in enumerate(roles):
        sub = {('module.' if module_prefix else '') + k[len(PREFIX[role]):]: v.clone()
               for k, v in state.items() if k.startswith(PREFIX[role])}
        path = str(tmp_path / f'file_{i}.pth')
        torch.save({'params': sub}, path)
        paths.append(path)
    return paths


def convert(args):
    return subprocess.run([sys.executable, TOOL, *args], capture_output=True, text=True,
                          cwd=REPO, env={'PYTHONPATH': REPO, 'PATH': '/usr/bin:/bin'})


@pytest.mark.parametrize('realblur', [False, True])
def test_round_trip_by_content_not_file_name(tmp_path, realblur):
    config = tiny_config(tmp_path, realblur)
    model = MODELS.build(Config.fromfile(config).model)
    paths = write_official(tmp_path, model, ['net_d', 'net_g', 'net_le_dm', 'net_le'],
                           module_prefix=True)
    out = str(tmp_path / 'converted.pth')
    proc = convert([*paths, '--out', out, '--config', config])
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = torch.load(out, weights_only=True)
    assert ckpt['meta']['hidiff_mm']['variant'] == ('realblur' if realblur else 'gopro')
    # the record of a training checkpoint: the released networks are stage 2's, and the
    # diffusion settings are the official run's (T = 8 for GoPro, 16 for RealBlur)
    assert ckpt['meta']['hidiff_stage'] == 2
    assert ckpt['meta']['hidiff_diffusion'] == model.prior_head.scheduler.settings()
    assert ckpt['meta']['hidiff_diffusion']['num_train_timesteps'] == (16 if realblur else 8)
    fresh = MODELS.build(Config.fromfile(config).model)
    fresh.load_state_dict(ckpt['state_dict'], strict=True)
    for k, v in model.state_dict().items():
        assert torch.equal(v, fresh.state_dict()[k]), k


def test_missing_and_unexpected_keys_are_named(tmp_path):
    config = tiny_config(tmp_path)
    model = MODELS.build(Config.fromfile(config).model)
    g_path, = write_official(tmp_path, model, ['net_g'])
    state = torch.load(g_path)['params']
    state.pop('output.weight')
    state['extra.weight'] = torch.zeros(1)
    torch.save({'params': state}, g_path)
    proc = convert([g_path, '--out', str(tmp_path / 'x.pth'), '--config', config])
    assert proc.returncode != 0
    assert 'missing keys (1): output.weight' in proc.stderr
    assert 'unexpected keys (1): extra.weight' in proc.stderr
    assert not osp.exists(tmp_path / 'x.pth')


def test_clear_errors_for_bad_inputs(tmp_path):
    bogus = str(tmp_path / 'bogus.pth')
    torch.save({'params': {'foo.weight': torch.zeros(1)}}, bogus)
    proc = convert([bogus, '--out', str(tmp_path / 'y.pth')])
    assert proc.returncode != 0 and 'not an official HI-Diff network' in proc.stderr
    proc = convert([str(tmp_path / 'nope.pth'), '--out', str(tmp_path / 'y.pth')])
    assert proc.returncode != 0 and 'not found' in proc.stderr
