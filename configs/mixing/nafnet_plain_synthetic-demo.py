# The baseline of the mixing demo: a small plain NAFNet (MMagic's NAFNetLocal, width 16, one
# block per level) trained on the procedural blur set (tools/make_synthetic_blur.py, default
# data/synthetic) on CPU in a few minutes. nafnet_hidiff-prior_synthetic-demo.py is this config
# plus the HI-Diff prior, with the same data, optimizer, learning-rate curve and iterations.
_base_ = [
    '../_base_/hidiff_runtime.py',
    '../_base_/datasets/synthetic.py',
]

experiment_name = 'nafnet_plain_synthetic-demo'
work_dir = f'./work_dirs/{experiment_name}'

model = dict(
    type='BaseEditModel',
    generator=dict(
        type='NAFNetLocal',
        img_channels=3,
        mid_channels=16,
        enc_blk_nums=[1, 1, 1, 1],
        middle_blk_num=1,
        dec_blk_nums=[1, 1, 1, 1],
        train_size=(1, 3, 64, 64)),
    pixel_loss=dict(type='L1Loss', loss_weight=1.0, reduction='mean'),
    data_preprocessor=dict(type='DataPreprocessor', mean=[0., 0., 0.], std=[255., 255., 255.]))

# AdamW 1e-3 without gradient clipping, as in MMagic's NAFNet recipe
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=1e-4, betas=(0.9, 0.999)))
# two cosine cycles of 300 iterations: the prior-guided run restarts its schedule at its stage
# switch (iteration 300), so both runs follow the same learning-rate curve
param_scheduler = [
    dict(type='CosineRestartLR', periods=[300, 300], restart_weights=[1, 1], eta_min=1e-5,
         by_epoch=False)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=600, val_interval=300)
val_cfg = dict(type='MultiValLoop')
test_cfg = dict(type='MultiTestLoop')

val_evaluator = [dict(type='PSNR'), dict(type='SSIM')]
test_evaluator = val_evaluator

default_hooks = dict(
    checkpoint=dict(interval=300, max_keep_ckpts=2, save_best=None),
    logger=dict(interval=50))
custom_hooks = [dict(type='ExactResumeHook')]

train_dataloader = dict(num_workers=0)
val_dataloader = dict(num_workers=0)
test_dataloader = dict(num_workers=0)
