# HI-Diff stage 1 on GoPro (official options/train/GoPro_S1.yml): the Transformer and the
# stage-1 latent encoder (which sees sharp + blurry) train for 300k iterations with the
# progressive patch schedule, 4 GPUs (tools/dist_train.sh configs/hidiff/hidiff_s1_gopro.py 4).
_base_ = [
    '../_base_/hidiff_runtime.py',
    '../_base_/models/hidiff_gopro.py',
    '../_base_/schedules/hidiff_300k.py',
    '../_base_/datasets/gopro.py',
]

experiment_name = 'hidiff_s1_gopro'
work_dir = f'./work_dirs/{experiment_name}'

model = dict(stage=1)

progressive = dict(
    type='ProgressivePatchHook',
    milestones=[20000, 40000, 60000, 80000, 100000, 300000],
    patch_sizes=[128, 160, 192, 256, 320, 384],
    batch_sizes=[16, 10, 8, 4, 2, 2])

custom_hooks = [
    progressive,
    dict(type='ExactResumeHook'),
    dict(type='BasicVisualizationHook', interval=1),
]
