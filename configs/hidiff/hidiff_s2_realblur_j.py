# HI-Diff stage 2 on RealBlur-J: the official ldm diffusion path (x0-prediction, no clamp,
# sqrt-linear betas, T = 16) from the stage-1 checkpoint. (The official RealBlur_R_S2.yml loads
# no stage-1 weights at all, a config bug; here both sets load their own stage 1.)
_base_ = ['./hidiff_s1_realblur_j.py']

experiment_name = 'hidiff_s2_realblur_j'
work_dir = f'./work_dirs/{experiment_name}'

# As the official S2 run: the Transformer and the stage-1 encoder from stage 1, loaded strictly
# (a missing or unexpected key fails and names the keys); stage-2 encoder and denoiser fresh.
# Validation and test blind (the stage-1 config it inherits validates with the oracle prior).
model = dict(stage=2, oracle_prior=False,
             init_from_stage1='./work_dirs/hidiff_s1_realblur_j/iter_300000.pth')
