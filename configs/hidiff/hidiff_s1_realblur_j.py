# HI-Diff stage 1 on RealBlur-J (official options/train/RealBlur_J_S1.yml): LeakyReLU latent
# encoders with 5 blocks and GDFN expansion 2.0; same optimisation as GoPro. Written for 8
# processes with the official total batch 64 -> 8 (8 -> 1 pairs per process):
# tools/dist_train.sh configs/hidiff/hidiff_s1_realblur_j.py 8.
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
    {{_base_.progressive}},
    dict(type='ExactResumeHook'),
    dict(type='BasicVisualizationHook', interval=1),
]
