# The one-run GoPro recipe in float16 mixed precision, for GPUs without bfloat16 (before Ampere):
# float16 overflows above 65504 and flushes small gradients to zero, so the loss is scaled
# dynamically (torch GradScaler: start at 2**16, halve on inf/NaN gradients and skip that step,
# double after 2000 clean steps); gradients are unscaled before the grad-norm clip.
# The same as `python tools/train.py configs/hidiff_gopro.py --amp`.
_base_ = ['../hidiff_gopro.py']

experiment_name = 'hidiff_gopro_amp_fp16'
work_dir = f'./work_dirs/{experiment_name}'

optim_wrapper = dict(type='AmpOptimWrapper', dtype='float16', loss_scale='dynamic')
