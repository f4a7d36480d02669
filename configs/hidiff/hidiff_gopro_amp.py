# The one-run GoPro recipe (configs/hidiff_gopro.py: stage 1, then stage 2 from iteration 300k)
# in bfloat16 mixed precision. StageSwitchHook builds the stage-2 optimizer from the same
# optim_wrapper, so both stages run under AmpOptimWrapper. See hidiff_s1_gopro_amp.py.
#   bash tools/dist_train.sh configs/hidiff/hidiff_gopro_amp.py 8
_base_ = ['../hidiff_gopro.py']

experiment_name = 'hidiff_gopro_amp'
work_dir = f'./work_dirs/{experiment_name}'

optim_wrapper = dict(type='AmpOptimWrapper', dtype='bfloat16', loss_scale=dict(enabled=False))
