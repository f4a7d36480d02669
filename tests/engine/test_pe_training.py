# Copyright (c) hidiff_mm contributors. All rights reserved.
"""HI-Diff-PE end to end: fine-tune from a HIDiff checkpoint, exact resume of both optimizers,
2-process gloo training with MMSeparateDistributedDataParallel."""
import os
import os.path as osp
import shutil
import socket

import pytest
import torch
import torchvision
from engine_utils import HERE, REPO, run_tool
from mmagic.registry import MODELS

import hidiff_mm  # noqa: F401  (registers HIDiff for the base checkpoint)

ARCH = '''
    generator=dict(dim=8, num_blocks=[1, 1, 1, 1], num_refinement_blocks=1, prior_channels=16),
    prior_head=dict(
        encoder_s1=dict(embed_dim=4, num_blocks=1),
        encoder_s2=dict(embed_dim=4, num_blocks=1),
        denoiser=dict(prior_channels=16, inner_channels=16)),'''

TEMPLATE = '''
_base_ = {base!r}
custom_imports = dict(imports=['hidiff_mm', 'rank_params_hook'], allow_failed_imports=False)
work_dir = {work_dir!r}
load_from = {load_from!r}
model = dict(
    {arch}
    discriminator=dict(mid_channels=4, input_size=32, num_stages=3),
    perceptual_loss=dict(vgg_path={vgg!r}, layer_weights=dict(_delete_=True, conv2_2=1.0)))
train_pipeline = [
    dict(type='LoadImagePair', keys=['img', 'gt'], color_type='color', channel_order='rgb',
         imdecode_backend='cv2'),
    dict(type='SetValues', dictionary=dict(scale=1)),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size={batch}, num_workers=0,
    dataset=dict(data_root={data!r} + '/train', pipeline=train_pipeline))
val_dataloader = dict(num_workers=0, dataset=dict(data_root={data!r} + '/test'))
test_dataloader = val_dataloader
train_cfg = dict(type='IterBasedTrainLoop', max_iters=2, val_interval={val_interval})
default_hooks = dict(checkpoint=dict(interval=1, max_keep_ckpts=-1), logger=dict(interval=1))
custom_hooks = [dict(type='ExactResumeHook'), dict(type='RankParamsHook')]
randomness = dict(seed=0, deterministic=True)
visualizer = dict(vis_backends=[dict(type='LocalVisBackend')])
'''

HOOK = '''
import torch
from mmagic.registry import HOOKS
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper


@HOOKS.register_module()
class RankParamsHook(Hook):
    """Save this rank's parameters (DDP prefixes removed) after training."""

    def after_train(self, runner):
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        params = {k.replace('.module.', '.', 1): v.detach().cpu()
                  for k, v in model.named_parameters()}
        torch.save(params, f'{runner.work_dir}/rank{get_rank()}_params.pth')
        wrappers = {name: type(child).__name__ for name, child in model.named_children()}
        wrappers['model'] = type(runner.model).__name__
        torch.save(wrappers, f'{runner.work_dir}/rank{get_rank()}_wrappers.pth')
'''


@pytest.fixture(scope='module')
def pe_setup(tmp_path_factory):
    """A random VGG-19 file, the hook module and a 'trained' tiny HIDiff checkpoint."""
    root = tmp_path_factory.mktemp('pe')
    torch.manual_seed(0)
    with torch.device('meta'):
        features = torchvision.models.vgg19(weights=None).features[:8]
    features.to_empty(device='cpu')
    for m in features.modules():
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')
            torch.nn.init.zeros_(m.bias)
    vgg = str(root / 'vgg19.pth')
    torch.save({f'features.{k}': v for k, v in features.state_dict().items()}, vgg)
    (root / 'rank_params_hook.py').write_text(HOOK)

    torch.manual_seed(123)  # not the runner's seed: loaded weights differ from a fresh init
    enc = dict(type='HIDiffLatentEncoder', embed_dim=4, num_blocks=1)
    hidiff = MODELS.build(dict(
        type='HIDiff', stage=2,
        generator=dict(type='HIDiffTransformer', dim=8, num_blocks=[1, 1, 1, 1],
                       num_refinement_blocks=1, prior_channels=16),
        prior_head=dict(type='LatentPriorHead', encoder_s1=dict(enc, in_channels=6),
                        encoder_s2=dict(enc, in_channels=3),
                        denoiser=dict(type='HIDiffMixerDenoiser', prior_channels=16,
                                      inner_channels=16))))
    base = str(root / 'hidiff.pth')
    torch.save(dict(state_dict=hidiff.state_dict(), meta=dict()), base)
    return dict(root=str(root), vgg=vgg, base=base, base_state=hidiff.state_dict())


def write_config(path, setup, data, work_dir, batch=2, val_interval=100):
    with open(path, 'w') as f:
        f.write(TEMPLATE.format(
            base=osp.join(REPO, 'configs', 'hidiff_pe', 'hidiff_pe_demo.py'), arch=ARCH,
            work_dir=work_dir, load_from=setup['base'], vgg=setup['vgg'], data=data,
            batch=batch, val_interval=val_interval))
    return str(path)


def env(setup):
    return {'PYTHONPATH': os.pathsep.join([REPO, HERE, setup['root']])}


def load(path):
    return torch.load(path, map_location='cpu', weights_only=True)


def max_diff(a, b):
    assert a.keys() == b.keys()
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)


def optimizer_states_equal(a, b):
    assert a['param_groups'] == b['param_groups']
    assert a['state'].keys() == b['state'].keys() and a['state']
    return all(torch.equal(sa[k], b['state'][i][k]) for i, sa in a['state'].items() for k in sa)


def test_finetune_from_hidiff_then_resume_restores_both_optimizers(
        tiny_data, pe_setup, tmp_path):
    full_dir, resume_dir = str(tmp_path / 'full'), str(tmp_path / 'resume')
    run_tool(['tools/train.py', write_config(tmp_path / 'full.py', pe_setup, tiny_data,
                                             full_dir)], env_extra=env(pe_setup))
    base, it1 = pe_setup['base_state'], load(osp.join(full_dir, 'iter_1.pth'))
    full = load(osp.join(full_dir, 'iter_2.pth'))
    weights = full['state_dict']
    # load_from: the HIDiff checkpoint; E1 unused and frozen, the whole blind path trained
    for prefix, same in [('prior_head.encoder_s1.', True), ('prior_head.encoder_s2.', False),
                         ('prior_head.denoiser.', False), ('generator.', False)]:
        keys = [k for k in base if k.startswith(prefix)]
        assert keys and all(torch.equal(base[k], weights[k]) for k in keys) == same, prefix
    assert any(k.startswith('discriminator.') for k in weights)
    assert not any(k.startswith('perceptual_loss.') for k in weights)  # VGG not checkpointed
    assert set(full['optimizer']) == {'generator', 'discriminator'}
    assert set(it1['optimizer']) == {'generator', 'discriminator'}

    os.makedirs(resume_dir)
    shutil.copy(osp.join(full_dir, 'iter_1.pth'), resume_dir)
    resumed_cfg = write_config(tmp_path / 'resume.py', pe_setup, tiny_data, resume_dir)
    run_tool(['tools/train.py', resumed_cfg, '--resume', osp.join(resume_dir, 'iter_1.pth')],
             env_extra=env(pe_setup))
    resumed = load(osp.join(resume_dir, 'iter_2.pth'))
    assert max_diff(resumed['state_dict'], weights) <= 1e-6
    for key in ('generator', 'discriminator'):
        states = resumed['optimizer'][key]['state']
        assert all(int(s['step']) == 2 for s in states.values()), key  # continued, not fresh
        assert optimizer_states_equal(resumed['optimizer'][key], full['optimizer'][key]), key


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_two_process_gloo_separate_ddp(tiny_data, pe_setup, tmp_path):
    work_dir = str(tmp_path / 'two')
    cfg = write_config(tmp_path / 'two.py', pe_setup, tiny_data, work_dir, batch=1,
                       val_interval=2)
    proc = run_tool(['-m', 'torch.distributed.run', '--nproc_per_node=2',
                     f'--master_port={free_port()}', 'tools/train.py', cfg, '--launcher',
                     'pytorch'], timeout=400, env_extra=env(pe_setup))
    wrappers = load(osp.join(work_dir, 'rank1_wrappers.pth'))
    assert wrappers['model'] == 'MMSeparateDistributedDataParallel'
    assert {k: wrappers[k] for k in ('generator', 'prior_head', 'discriminator')} == \
        dict.fromkeys(('generator', 'prior_head', 'discriminator'), 'MMDistributedDataParallel')
    assert wrappers['perceptual_loss'] == 'LocalPerceptualLoss'  # no parameters: not wrapped
    rank0, rank1 = (load(osp.join(work_dir, f'rank{r}_params.pth')) for r in (0, 1))
    # gradients were averaged across ranks for G, the prior path (through the prior head's
    # own DDP) and D: both ranks hold the same parameters, and they moved
    assert max_diff(rank0, rank1) == 0
    base = pe_setup['base_state']
    for prefix in ('generator.', 'prior_head.encoder_s2.', 'prior_head.denoiser.'):
        assert any(not torch.equal(base[k], rank0[k]) for k in base if k.startswith(prefix))
    ckpt = load(osp.join(work_dir, 'iter_2.pth'))
    assert set(ckpt['optimizer']) == {'generator', 'discriminator'}
    assert 'Iter(val) [1/1]' in proc.stdout  # blind validation through the DDP wrappers
