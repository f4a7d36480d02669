# The whole HI-Diff GoPro recipe in one run: 300k stage-1 iterations, then StageSwitchHook puts
# the model in stage 2 with a fresh optimizer and schedule for another 300k iterations (the
# official two runs and their hand-edited paths become one command):
#   bash tools/dist_train.sh configs/hidiff_gopro.py 8
# It assumes 8 processes: the official total batch of each progressive phase, 64 -> 8 pairs
# (4 GPUs x 16 -> 2 officially), is 8 -> 1 pairs per process here; the hook logs the total batch
# and warns when the world size changes it. The progressive schedule restarts at the switch.
_base_ = ['./hidiff/hidiff_s1_gopro.py']

experiment_name = 'hidiff_gopro'
work_dir = f'./work_dirs/{experiment_name}'

train_cfg = dict(max_iters=600000)

custom_hooks = [
    dict(type='StageSwitchHook', switch_iter=300000),
    {{_base_.progressive}},
    dict(type='ExactResumeHook'),
    dict(type='BasicVisualizationHook', interval=1),
]
