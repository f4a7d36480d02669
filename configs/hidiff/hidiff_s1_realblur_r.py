# HI-Diff stage 1 on RealBlur-R (official options/train/RealBlur_R_S1.yml): LeakyReLU latent
# encoders with 5 blocks and GDFN expansion 2.0; same optimisation as GoPro, with the official
# total batch 64 -> 8 (8 -> 1 pairs per process at once, accumulated on fewer than 8):
# tools/dist_train.sh configs/hidiff/hidiff_s1_realblur_r.py 8.
_base_ = [
    '../_base_/hidiff_runtime.py',
    '../_base_/models/hidiff_realblur.py',
    '../_base_/schedules/hidiff_300k.py',
    '../_base_/datasets/realblur_r.py',
]

experiment_name = 'hidiff_s1_realblur_r'
work_dir = f'./work_dirs/{experiment_name}'

# Validation as the official stage-1 run's: with the prior of the stage-1 encoder on the sharp
# image (the sampler is not trained yet), an oracle score, asked for by name and logged.
# tools/test.py with this config scores the same way; test blind with a stage-2 config.
model = dict(stage=1, oracle_prior=True)

custom_hooks = [
    {{_base_.progressive}},
    dict(type='ExactResumeHook'),
    dict(type='BasicVisualizationHook', interval=1),
]
