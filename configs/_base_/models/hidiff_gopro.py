# HI-Diff, GoPro model (paper Table 2): GELU latent encoders, mixer denoiser, T = 8.
model = dict(
    type='HIDiff',
    stage=1,
    generator=dict(
        type='HIDiffTransformer',
        dim=48,
        num_blocks=[3, 5, 6, 6],
        num_refinement_blocks=4,
        heads=[1, 2, 4, 8],
        ffn_expansion=2.66,
        bias=False,
        norm_type='WithBias',
        prior_channels=256,
        prior_tokens=16),
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
    pixel_loss=dict(type='L1Loss', loss_weight=1.0, reduction='mean'),
    prior_loss=dict(type='L1Loss', loss_weight=1.0, reduction='mean'),
    data_preprocessor=dict(type='DataPreprocessor', mean=[0., 0., 0.], std=[255., 255., 255.]))
