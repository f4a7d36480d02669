"""Both HI-Diff stages train MMagic's NAFNet / Restormer wrapped by PriorGuidedBackbone, through
tools/train.py and tiny versions of configs/mixing/*_hidiff-prior_gopro.py (which inherit
MMagic's own configs)."""
import os.path as osp

import pytest
import torch
from engine_utils import REPO, run_tool

TEMPLATE = '''
_base_ = {base!r}
work_dir = {work_dir!r}
model = dict(
    generator=dict(backbone={backbone}, prior_channels=16, {points}),
    prior_head=dict(
        encoder_s1=dict(embed_dim=4, num_blocks=1),
        encoder_s2=dict(embed_dim=4, num_blocks=1),
        denoiser=dict(prior_channels=16, inner_channels=16)))
pipeline = [
    dict(type='LoadImageFromFile', key='img', channel_order='rgb'),
    dict(type='LoadImageFromFile', key='gt', channel_order='rgb'),
    dict(type='SetValues', dictionary=dict(scale=1)),
    dict(type='PairedRandomCrop', gt_patch_size=16),
    dict(type='PackInputs'),
]
data = dict(type='BasicImageDataset', data_prefix=dict(img='input', gt='target'))
train_dataloader = dict(
    _delete_=True, batch_size=2, num_workers=0, sampler=dict(type='InfiniteSampler'),
    dataset=dict(data, data_root={data!r} + '/train', pipeline=pipeline))
val_dataloader = dict(
    _delete_=True, batch_size=1, num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(data, data_root={data!r} + '/test', pipeline=pipeline[:2] + pipeline[-1:]))
val_evaluator = [dict(type='PSNR')]
val_cfg = dict(type='MultiValLoop')
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=4, val_interval=4)
default_hooks = dict(checkpoint=dict(interval=2, out_dir=None, save_best=None),
                     logger=dict(interval=1))
custom_hooks = [dict(type='StageSwitchHook', switch_iter=2), dict(type='ExactResumeHook'),
                {extra_hook}]
randomness = dict(seed=0, deterministic=True)
visualizer = dict(vis_backends=[dict(type='LocalVisBackend')])
'''

CASES = {
    'nafnet': dict(
        base='nafnet_hidiff-prior_gopro.py',
        backbone="dict(mid_channels=8, enc_blk_nums=[1, 1], middle_blk_num=1, "
                 "dec_blk_nums=[1, 1], train_size=(1, 3, 16, 16))",
        points="insert_after=['encoders.0', 'encoders.1', 'middle_blks', 'decoders.0', "
               "'decoders.1']",
        extra_hook=''),
    'restormer': dict(
        base='restormer_hidiff-prior_gopro.py',
        backbone="dict(dim=8, num_blocks=[1, 1, 1, 1], num_refinement_blocks=1)",
        points='',  # the config's own insertion points (HI-Diff's placement)
        # the config's progressive patches, scaled down: 8 px, then 16 px from the switch on
        extra_hook="dict(type='ProgressivePatchHook', milestones=[1, 100], "
                   "patch_sizes=[8, 16], batch_sizes=[2, 2], start_iter=[0, 2])"),
}


def weights(path: str) -> dict:
    return torch.load(path, map_location='cpu', weights_only=True)['state_dict']


def changed(a: dict, b: dict, prefix: str) -> list:
    keys = [k for k in a if k.startswith(prefix)]
    assert keys, prefix
    return [k for k in keys if not torch.equal(a[k], b[k])]


@pytest.mark.parametrize('case', sorted(CASES))
def test_both_stages_train_the_wrapped_backbone(tiny_data, tmp_path, case):
    work_dir = str(tmp_path / 'work')
    spec = CASES[case]
    config = tmp_path / f'tiny_{case}.py'
    config.write_text(TEMPLATE.format(
        base=osp.join(REPO, 'configs', 'mixing', spec['base']), work_dir=work_dir,
        data=tiny_data, backbone=spec['backbone'], points=spec['points'],
        extra_hook=spec['extra_hook']))
    proc = run_tool(['tools/train.py', str(config)])
    log = proc.stdout + proc.stderr
    assert 'StageSwitchHook: stage 2 from iteration 2' in log
    assert 'PSNR' in log  # blind validation of the wrapped model ran

    s2 = weights(osp.join(work_dir, 'iter_2.pth'))
    final = torch.load(osp.join(work_dir, 'iter_4.pth'), map_location='cpu', weights_only=True)
    s4 = final['state_dict']
    assert final['meta']['hidiff_stage'] == 2
    # stage 1 trained the zero-initialised HIM projections, so the prior is in use
    assert all(s2[k].abs().sum() > 0 for k in s2 if k.startswith('generator.hims.')
               and k.endswith('proj.weight'))
    # stage 2: backbone, HIMs, stage-2 encoder and denoiser train; the stage-1 encoder is frozen
    for prefix in ('generator.backbone.', 'generator.hims.', 'prior_head.encoder_s2.',
                   'prior_head.denoiser.'):
        assert changed(s2, s4, prefix), prefix
    assert not changed(s2, s4, 'prior_head.encoder_s1.')
