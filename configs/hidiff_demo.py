# The embedded default: both HI-Diff stages on the procedural blur set
# (tools/make_synthetic_blur.py) with a small model, on CPU in a few minutes. Validation reports
# the PSNR/SSIM of the output and the PSNR of the blurry input ('blurry_input/PSNR'), so the gain
# is visible in the log. The demo's Transformer starts as the identity (zero-initialised output
# conv; the official init is PyTorch's default) so a short run improves on the input from the start.
_base_ = [
    './_base_/hidiff_runtime.py',
    './_base_/models/hidiff_gopro.py',
    './_base_/datasets/synthetic.py',
]

experiment_name = 'hidiff_demo'
work_dir = f'./work_dirs/{experiment_name}'

model = dict(
    generator=dict(dim=16, num_blocks=[1, 1, 1, 1], num_refinement_blocks=1, prior_channels=64,
                   zero_init_output=True),
    prior_head=dict(
        encoder_s1=dict(embed_dim=16, num_blocks=2),
        encoder_s2=dict(embed_dim=16, num_blocks=2),
        denoiser=dict(prior_channels=64, inner_channels=128)))

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=1e-4, betas=(0.9, 0.999)),
    clip_grad=dict(max_norm=0.1))
param_scheduler = [
    dict(type='CosineAnnealingLR', T_max=300, eta_min=1e-5, begin=0, end=300, by_epoch=False)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=600, val_interval=300)
val_cfg = dict(type='MultiValLoop')
test_cfg = dict(type='MultiTestLoop')

val_evaluator = [
    dict(type='PSNR'),
    dict(type='SSIM'),
    dict(type='PSNR', pred_key='input_img', prefix='blurry_input'),
]
test_evaluator = val_evaluator

default_hooks = dict(
    checkpoint=dict(interval=300, max_keep_ckpts=2, save_best=None),
    logger=dict(interval=25))

custom_hooks = [
    dict(type='StageSwitchHook', switch_iter=300),
    dict(type='ExactResumeHook'),
]

train_dataloader = dict(num_workers=0)
val_dataloader = dict(num_workers=0)
test_dataloader = dict(num_workers=0)
