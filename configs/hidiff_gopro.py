# The whole HI-Diff GoPro recipe in one run: 300k stage-1 iterations, then StageSwitchHook puts
# the model in stage 2 with a fresh optimizer and schedule for another 300k iterations (the
# official two runs and their hand-edited paths become one command):
#   bash tools/dist_train.sh configs/hidiff_gopro.py 8
# The official recipe used 4 GPUs with batch 16..2 per GPU; with 8 GPUs the global batch doubles.
_base_ = ['./hidiff/hidiff_s1_gopro.py']

experiment_name = 'hidiff_gopro'
work_dir = f'./work_dirs/{experiment_name}'

train_cfg = dict(max_iters=600000)

custom_hooks = [
    dict(type='StageSwitchHook', switch_iter=300000),
    dict(
        type='ProgressivePatchHook',
        milestones=[20000, 40000, 60000, 80000, 100000, 300000],
        patch_sizes=[128, 160, 192, 256, 320, 384],
        batch_sizes=[16, 10, 8, 4, 2, 2],
        start_iter=[0, 300000]),
    dict(type='ExactResumeHook'),
    dict(type='BasicVisualizationHook', interval=1),
]
