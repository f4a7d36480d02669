# The one-run GoPro recipe with both options: bfloat16 mixed precision (hidiff_gopro_amp.py) and
# the EMA of the weights (hidiff_gopro_ema.py). The EMA is kept in float32 (autocast only lowers
# the precision of the forward computations, not of the weights).
_base_ = ['./hidiff_gopro_ema.py']

experiment_name = 'hidiff_gopro_amp_ema'
work_dir = f'./work_dirs/{experiment_name}'

optim_wrapper = dict(type='AmpOptimWrapper', dtype='bfloat16', loss_scale=dict(enabled=False))
