# MMagic's NAFNet GoPro recipe (NAFNetLocal, width 64, 36 blocks, PSNR loss, AdamW 1e-3, cosine
# over 400k iterations, batch 8 of 256x256 crops) with a HI-Diff prior: the unmodified NAFNet is
# wrapped by PriorGuidedBackbone, which adds a HIM (cross-attention to the prior tokens) after
# every encoder level, the middle blocks and every decoder level, and the HIDiff editor trains
# both HI-Diff stages in one run: stage 1 (NAFNet + HIMs + stage-1 latent encoder) for the 400k
# iterations of the NAFNet recipe, then stage 2 (NAFNet + HIMs + stage-2 encoder + denoiser)
# for another 400k with a fresh optimizer and schedule (StageSwitchHook). Everything else
# (data, optimizer, schedule, evaluation) is MMagic's config unchanged. To start from a
# pretrained NAFNet, set `load_from` to its checkpoint: the plain `generator.*` keys load into
# `generator.backbone.*`, and the zero-initialised HIMs leave its output unchanged at start.
_base_ = 'mmagic::nafnet/nafnet_c64eb11128mb1db1111_8xb8-lr1e-3-400k_gopro.py'

custom_imports = dict(imports=['hidiff_mm'], allow_failed_imports=False)
# Checkpoints record the training stage and diffusion settings, checked when one is loaded (as
# every HI-Diff recipe does through configs/_base_/hidiff_runtime.py).
default_hooks = dict(diffusion_settings=dict(type='DiffusionSettingsHook'))

experiment_name = 'nafnet_hidiff-prior_gopro'
work_dir = f'./work_dirs/{experiment_name}'

model = dict(
    type='HIDiff',
    stage=1,
    generator=dict(
        _delete_=True,
        type='PriorGuidedBackbone',
        backbone={{_base_.model.generator}},
        insert_after=[
            'encoders.0', 'encoders.1', 'encoders.2', 'encoders.3', 'middle_blks',
            'decoders.0', 'decoders.1', 'decoders.2', 'decoders.3'
        ],
        prior_channels=256,
        prior_tokens=16,
        num_heads=1,
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
    # NAFNet downsamples 4 times: prediction pads H and W to multiples of 16
    pad_multiple=16,
    # the base's DataPreprocessor (mean 0, std 255) already gives the [0, 1] images HI-Diff uses
    data_preprocessor=dict(type='DataPreprocessor', mean=[0., 0., 0.], std=[255., 255., 255.]))

# stage 1: the 400k iterations of the NAFNet recipe; stage 2: the same recipe again
train_cfg = dict(type='IterBasedTrainLoop', max_iters=800_000, val_interval=20000)

custom_hooks = [
    dict(type='BasicVisualizationHook', interval=1),
    dict(type='StageSwitchHook', switch_iter=400_000),
    dict(type='ExactResumeHook'),
]
