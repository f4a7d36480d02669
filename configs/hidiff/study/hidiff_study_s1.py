# The sampler / schedule / one-stage study of docs/samplers.md (run by
# benchmarks/sampler_study.py), stage 1: a small HI-Diff (Transformer width 8, one block per
# level, 32-channel prior, 8-channel single-block latent encoders) on the procedural blur set of
# tools/make_synthetic_blur.py, 32x32 crops, batch 4, 600 iterations, sized to train on one CPU
# thread in about a minute. No validation during training (the study script scores the runs),
# one checkpoint at the end.
_base_ = ['../../hidiff_demo.py']

experiment_name = 'hidiff_study_s1'
work_dir = f'./work_dirs/{experiment_name}'

model = dict(
    stage=1,
    generator=dict(dim=8, num_blocks=[1, 1, 1, 1], num_refinement_blocks=1, prior_channels=32),
    prior_head=dict(
        encoder_s1=dict(embed_dim=8, num_blocks=1),
        encoder_s2=dict(embed_dim=8, num_blocks=1),
        denoiser=dict(prior_channels=32, inner_channels=64)))

train_pipeline = [
    dict(type='LoadImagePair', keys=['img', 'gt'], color_type='color', channel_order='rgb',
         imdecode_backend='cv2'),
    dict(type='SetValues', dictionary=dict(scale=1)),
    dict(type='PairedRandomCrop', gt_patch_size=32),
    dict(type='RandomDihedral', keys=['img', 'gt']),
    dict(type='PackInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))

param_scheduler = [
    dict(type='CosineAnnealingLR', T_max=600, eta_min=1e-5, begin=0, end=600, by_epoch=False)
]
train_cfg = dict(max_iters=600, val_interval=100000)

default_hooks = dict(
    checkpoint=dict(interval=600, max_keep_ckpts=1, save_best=None),
    logger=dict(interval=100))

custom_hooks = [
    dict(type='ExactResumeHook'),
]
