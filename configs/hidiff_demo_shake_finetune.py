# The quick start's short run: fine-tune the shipped demo model (demo_model/) through the whole
# pipeline in a minute or two of CPU: stage 1 (Transformer + stage-1 encoder) for 60 iterations,
# then StageSwitchHook and stage 2 (Transformer + stage-2 encoder + denoiser) for 60, each at a
# tenth of the training learning rate, validating (PSNR of the output and of the blurry input)
# every 20 iterations. The quick start passes the data roots.
_base_ = ['./hidiff_demo_shake.py']

experiment_name = 'hidiff_demo_shake_finetune'
work_dir = f'./work_dirs/{experiment_name}'
load_from = 'demo_model/hidiff_demo_shake.pth'

optim_wrapper = dict(optimizer=dict(lr=1e-4))
param_scheduler = [
    dict(type='CosineAnnealingLR', T_max=60, eta_min=1e-5, begin=0, end=60, by_epoch=False)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=120, val_interval=20)

default_hooks = dict(
    checkpoint=dict(interval=60, max_keep_ckpts=2, save_best=None),
    logger=dict(interval=10, log_metric_by_epoch=False))  # validation scalars at their iteration
custom_hooks = [
    dict(type='StageSwitchHook', switch_iter=60),
    dict(type='ExactResumeHook'),
]
