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

train_cfg = dict(type='IterBasedTrainLoop', max_iters=300000, val_interval=4000)
val_cfg = dict(type='MultiValLoop')
test_cfg = dict(type='MultiTestLoop')

# The official progressive patch/batch schedule as a total batch of 64, 40, 32, 16, 8, 8 pairs
# (4 GPUs x 16, 10, 8, 4, 2, 2 in the official runs), written for 8 processes: 8, 5, 4, 2, 1, 1
# pairs each (the data base loads 8 pairs of 384^2 per process and the hook sub-samples them).
# The hook logs the total batch at start and warns when the world size makes it differ.
progressive = dict(
    type='ProgressivePatchHook',
    milestones=[20000, 40000, 60000, 80000, 100000, 300000],
    patch_sizes=[128, 160, 192, 256, 320, 384],
    batch_sizes=[8, 5, 4, 2, 1, 1],
    recipe_total_batch_sizes=[64, 40, 32, 16, 8, 8])
