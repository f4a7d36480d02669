# The official optimisation of each stage: AdamW 2e-4 (wd 1e-4 on every parameter), grad-norm
# clip 0.01, lr constant for 100k iterations then cosine to 1e-6 at 300k; validate every 4k.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-4, weight_decay=1e-4, betas=(0.9, 0.999)),
    clip_grad=dict(max_norm=0.01))

param_scheduler = [
    dict(type='ConstantLR', factor=1.0, begin=0, end=100000, by_epoch=False),
    dict(type='CosineAnnealingLR', T_max=200000, eta_min=1e-6, begin=100000, end=300000,
         by_epoch=False),
]

# One iteration is one optimizer step of the recipe's total batch on any number of processes:
# the loop loads 64 pairs per step in all (64 / world size per process) and runs them as the
# micro-batches that ProgressivePatchHook plans for the phase (gradient accumulation).
train_cfg = dict(type='AccumulatingIterBasedTrainLoop', max_iters=300000, val_interval=4000,
                 total_batch_size=64)
val_cfg = dict(type='MultiValLoop')
test_cfg = dict(type='MultiTestLoop')

# The official progressive patch/batch schedule as a total batch of 64, 40, 32, 16, 8, 8 pairs
# (4 GPUs x 16, 10, 8, 4, 2, 2 in the official runs). A process runs at most 8, 5, 4, 2, 1, 1
# pairs at once (the micro-batch: the memory of one process of the 8-process run); on fewer
# processes the hook accumulates 8 / world size micro-batches per optimizer step, so 1, 2, 4 or
# 8 processes train with the same total batch, learning rate, clipping and schedule. The hook
# sub-samples the loaded 384^2 pairs, logs world size x micro-batch x accumulation = total at
# start, and warns when the world size cannot make the total (e.g. 3 processes).
progressive = dict(
    type='ProgressivePatchHook',
    milestones=[20000, 40000, 60000, 80000, 100000, 300000],
    patch_sizes=[128, 160, 192, 256, 320, 384],
    batch_sizes=[8, 5, 4, 2, 1, 1],
    recipe_total_batch_sizes=[64, 40, 32, 16, 8, 8])
