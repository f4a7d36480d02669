# HI-Diff-2 (supplementary material, seed §1.1): a lighter Transformer (blocks [3, 5, 5, 6],
# GDFN expansion 2), N = 16 prior tokens of C' = 256 channels, latent encoders with L = 5
# blocks, and T = 4 diffusion steps; the rest as the GoPro model. Both stages in one run.
_base_ = ['../hidiff_gopro.py']

experiment_name = 'hidiff2_gopro'
work_dir = f'./work_dirs/{experiment_name}'

model = dict(
    generator=dict(num_blocks=[3, 5, 5, 6], ffn_expansion=2.0),
    prior_head=dict(
        encoder_s1=dict(num_blocks=5),
        encoder_s2=dict(num_blocks=5),
        scheduler=dict(num_train_timesteps=4)))
