# MMagic's Restormer (GoPro motion deblurring, official weights config) with a HI-Diff prior:
# the unmodified Restormer is wrapped by PriorGuidedBackbone, which puts a HIM (cross-attention
# to the prior tokens) at the start of every level, where HI-Diff's own Transformer has one
# (N tokens at full resolution, N/4 at 1/2 and 1/4, the pooled single token before the
# bottleneck), and the HIDiff editor trains both HI-Diff stages in one run.
# MMagic's restormer_official_gopro.py only evaluates (it has no training part), so the training
# part is added here: HI-Diff's official GoPro recipe (which is Restormer's), i.e. AdamW 2e-4,
# grad-norm clip 0.01, constant lr for 100k iterations then cosine to 1e-6 at 300k, progressive
# patches 128 -> 384 with a total batch of 64 -> 8 (8 -> 1 pairs per process on 8 processes,
# gradient accumulation on fewer), for each stage (300k + 300k), on GoPro in MMagic's layout
# (data/gopro/train/{blur,sharp}), validated on the GoPro test set. Model and test sets
# (GoPro, HIDE, RealBlur-J/R) are the base's. To start from the official Restormer weights, set
# `load_from`: the plain `generator.*` keys load into `generator.backbone.*`, and the
# zero-initialised HIMs leave its output unchanged at start.
_base_ = 'mmagic::restormer/restormer_official_gopro.py'

custom_imports = dict(imports=['hidiff_mm'], allow_failed_imports=False)
# Checkpoints record the training stage and diffusion settings, checked when one is loaded (as
# every HI-Diff recipe does through configs/_base_/hidiff_runtime.py).
default_hooks = dict(diffusion_settings=dict(type='DiffusionSettingsHook'))

experiment_name = 'restormer_hidiff-prior_gopro'
work_dir = f'./work_dirs/{experiment_name}'

model = dict(
    type='HIDiff',
    stage=1,
    generator=dict(
        _delete_=True,
        type='PriorGuidedBackbone',
        backbone={{_base_.model.generator}},
        # HI-Diff's placement: before each level's blocks, heads as the level's attention
        insert_before=[
            dict(name='encoder_level1', num_heads=1),
            dict(name='encoder_level2', num_heads=2),
            dict(name='encoder_level3', num_heads=4),
            dict(name='latent', num_heads=8),
            dict(name='decoder_level3', num_heads=4),
            dict(name='decoder_level2', num_heads=2),
            dict(name='decoder_level1', num_heads=1),
            dict(name='refinement', num_heads=1),
        ],
        prior_channels=256,
        prior_tokens=16,
        zero_init=True),
    # HI-Diff's GoPro prior: GELU latent encoders (N = 16 tokens x C' = 256), mixer denoiser, T=8
    prior_head=dict(
        type='LatentPriorHead',
        encoder_s1=dict(
            type='HIDiffLatentEncoder', in_channels=6, embed_dim=64, num_blocks=6, group=4,
            act='gelu'),
        encoder_s2=dict(
            type='HIDiffLatentEncoder', in_channels=3, embed_dim=64, num_blocks=6, group=4,
            act='gelu'),
        denoiser=dict(
            type='HIDiffMixerDenoiser', prior_channels=256, inner_channels=512,
            num_mixer_blocks=2, num_tokens=16, channel_expansion=2),
        scheduler=dict(
            type='HIDiffScheduler', num_train_timesteps=8, beta_start=0.1, beta_end=0.99,
            beta_schedule='linear', prediction_type='epsilon', clip_sample=True,
            legacy_start_point=True)),
    prior_loss=dict(type='L1Loss', loss_weight=1.0, reduction='mean'),
    # Restormer downsamples 3 times: prediction pads H and W to multiples of 8
    pad_multiple=8,
    # the base's DataPreprocessor (mean 0, std 255) already gives the [0, 1] images HI-Diff uses
    data_preprocessor=dict(type='DataPreprocessor', mean=[0., 0., 0.], std=[255., 255., 255.]))

# ---- the training part the base does not have ----
train_pipeline = [
    dict(type='LoadImageFromFile', key='img', channel_order='rgb', imdecode_backend='cv2'),
    dict(type='LoadImageFromFile', key='gt', channel_order='rgb', imdecode_backend='cv2'),
    dict(type='SetValues', dictionary=dict(scale=1)),
    dict(type='PairedRandomCrop', gt_patch_size=384),
    dict(type='Flip', keys=['img', 'gt'], flip_ratio=0.5, direction='horizontal'),
    dict(type='Flip', keys=['img', 'gt'], flip_ratio=0.5, direction='vertical'),
    dict(type='RandomTransposeHW', keys=['img', 'gt'], transpose_ratio=0.5),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=8,
    num_workers=8,
    persistent_workers=False,
    drop_last=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type='BasicImageDataset',
        metainfo=dict(dataset_type='GoPro', task_name='deblurring'),
        data_root='data/gopro/train',
        data_prefix=dict(img='blur', gt='sharp'),
        pipeline=train_pipeline))
val_dataloader = {{_base_.gopro_dataloader}}
# no prefix, so that the base's save_best='PSNR' finds the metric
val_evaluator = [dict(type='PSNR'), dict(type='SSIM')]

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-4, weight_decay=1e-4, betas=(0.9, 0.999)),
    clip_grad=dict(max_norm=0.01))
param_scheduler = [
    dict(type='ConstantLR', factor=1.0, begin=0, end=100000, by_epoch=False),
    dict(type='CosineAnnealingLR', T_max=200000, eta_min=1e-6, begin=100000, end=300000,
         by_epoch=False),
]
# stage 1 for 300k iterations, stage 2 (fresh optimizer and schedule) for another 300k; one
# iteration is one optimizer step of 64 loaded pairs in all, accumulated on fewer processes
train_cfg = dict(type='AccumulatingIterBasedTrainLoop', max_iters=600_000, val_interval=20000,
                 total_batch_size=64)
val_cfg = dict(type='MultiValLoop')

# seed + rank on every process, as the official runs
randomness = dict(seed=100, diff_rank_seed=True, deterministic=False)

custom_hooks = [
    dict(type='BasicVisualizationHook', interval=1),
    dict(type='StageSwitchHook', switch_iter=300_000),
    dict(
        type='ProgressivePatchHook',
        milestones=[20000, 40000, 60000, 80000, 100000, 300000],
        patch_sizes=[128, 160, 192, 256, 320, 384],
        batch_sizes=[8, 5, 4, 2, 1, 1],
        recipe_total_batch_sizes=[64, 40, 32, 16, 8, 8]),
    dict(type='ExactResumeHook'),
]
