# Stage 2 of the shipped demo model (demo_model/), continued: each run loads the last checkpoint
# of the run before it (load_from restores the weights only) and trains 12000 more stage-2
# iterations on both CPU cores, a fresh AdamW with a cosine from 5e-4 (a warm restart).
# StageSwitchHook(switch_iter=0) puts the model in stage 2 before the first step. The demo model
# is configs/hidiff_demo_shake.py (6000 iterations), then this file twice: the second time with
# --cfg-options load_from=<the first continuation's iter_12000.pth>. The exact commands are in
# demo_model/README.md.
_base_ = ['./hidiff_demo_shake.py']

experiment_name = 'hidiff_demo_shake_continue'
work_dir = f'./work_dirs/{experiment_name}'
load_from = './work_dirs/hidiff_demo_shake/iter_6000.pth'

iters = 12000
cosine = dict(type='CosineAnnealingLR', T_max=iters, eta_min=1e-5, begin=0, end=iters,
              by_epoch=False)
optim_wrapper = dict(optimizer=dict(lr=5e-4))
param_scheduler = [cosine]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=iters, val_interval=1000)
default_hooks = dict(checkpoint=dict(interval=500, max_keep_ckpts=3, save_best=None))
custom_hooks = [
    dict(type='StageSwitchHook', switch_iter=0, param_scheduler=[cosine]),
    dict(type='ExactResumeHook'),
]
