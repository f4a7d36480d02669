# HI-Diff stage 2 on GoPro (configs/hidiff/hidiff_s2_gopro.py) in bfloat16 mixed precision, from
# the stage-1 run of hidiff_s1_gopro_amp.py. See that file for what AmpOptimWrapper changes.
_base_ = ['./hidiff_s2_gopro.py']

experiment_name = 'hidiff_s2_gopro_amp'
work_dir = f'./work_dirs/{experiment_name}'

model = dict(init_from_stage1='./work_dirs/hidiff_s1_gopro_amp/iter_300000.pth')

optim_wrapper = dict(type='AmpOptimWrapper', dtype='bfloat16', loss_scale=dict(enabled=False))
