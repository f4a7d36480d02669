# HI-Diff stage 1 on RealBlur-J (official options/train/RealBlur_J_S1.yml): LeakyReLU latent
# encoders with 5 blocks and GDFN expansion 2.0; same optimisation as GoPro.
_base_ = [
    '../_base_/hidiff_runtime.py',
    '../_base_/models/hidiff_realblur.py',
    '../_base_/schedules/hidiff_300k.py',
    '../_base_/datasets/realblur_j.py',
]

experiment_name = 'hidiff_s1_realblur_j'
work_dir = f'./work_dirs/{experiment_name}'

model = dict(stage=1)

custom_hooks = [
    dict(
        type='ProgressivePatchHook',
        milestones=[20000, 40000, 60000, 80000, 100000, 300000],
        patch_sizes=[128, 160, 192, 256, 320, 384],
        batch_sizes=[16, 10, 8, 4, 2, 2]),
    dict(type='ExactResumeHook'),
    dict(type='BasicVisualizationHook', interval=1),
]
