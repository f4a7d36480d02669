# HI-Diff stage 1 on GoPro (configs/hidiff/hidiff_s1_gopro.py) in bfloat16 mixed precision:
# MMEngine's AmpOptimWrapper runs the forward pass and the loss under torch.autocast(bfloat16);
# the weights, gradients and AdamW states stay float32, and the grad-norm clip works as before.
# bfloat16 has float32's exponent range, so no loss scaling (the GradScaler is disabled). Needs a
# GPU with bfloat16 (Ampere or newer); AmpOptimWrapper refuses to build without CUDA.
# fp16 instead (older GPUs): configs/hidiff/hidiff_gopro_amp_fp16.py, or append
#   --cfg-options optim_wrapper.dtype=float16 optim_wrapper.loss_scale=dynamic
# (fp16 needs dynamic loss scaling; a bf16 checkpoint cannot be resumed as fp16: its loss-scaler
# state is empty).
_base_ = ['./hidiff_s1_gopro.py']

experiment_name = 'hidiff_s1_gopro_amp'
work_dir = f'./work_dirs/{experiment_name}'

optim_wrapper = dict(type='AmpOptimWrapper', dtype='bfloat16', loss_scale=dict(enabled=False))
