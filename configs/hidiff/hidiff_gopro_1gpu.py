# The one-run GoPro recipe (configs/hidiff_gopro.py) on one GPU of 24 GB: the official total
# batch of every phase (64 -> 8 pairs per optimizer step) by accumulating 8 micro-batches of
# 8 -> 1 pairs (ProgressivePatchHook plans it from the world size; hidiff_gopro.py does the same
# on one GPU), and activation checkpointing of the Transformer, so that the 384^2 micro-batch fits
# in fp32 as the recipe trains (the same gradients, one more forward of the levels; about
# 10 GiB instead of about 27 at 384^2, measured on CPU: docs/training.md, "One GPU").
#   python tools/train.py configs/hidiff/hidiff_gopro_1gpu.py
_base_ = ['../hidiff_gopro.py']

experiment_name = 'hidiff_gopro_1gpu'
work_dir = f'./work_dirs/{experiment_name}'

model = dict(generator=dict(with_cp=True))
