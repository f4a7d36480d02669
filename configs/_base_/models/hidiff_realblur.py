# HI-Diff, RealBlur-J/R models (paper Table 3): LeakyReLU latent encoders, MLP denoiser,
# x0-prediction without clamping, sqrt-linear betas, T = 16 (the official ldm path).
_base_ = ['./hidiff_gopro.py']

model = dict(
    generator=dict(ffn_expansion=2.0),
    prior_head=dict(
        encoder_s1=dict(num_blocks=5, act='lrelu'),
        encoder_s2=dict(num_blocks=5, act='lrelu'),
        denoiser=dict(
            _delete_=True, type='HIDiffMLPDenoiser', prior_channels=256, num_layers=4,
            time_scale=50.),
        scheduler=dict(
            num_train_timesteps=16, beta_schedule='sqrt_linear', prediction_type='sample',
            clip_sample=False, legacy_start_point=False, draw_step_noise=True)))
