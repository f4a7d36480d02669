# HI-Diff-PE on the procedural blur set (tools/make_synthetic_blur.py), CPU, a few minutes:
# fine-tune the demo model of configs/hidiff_demo.py (train it first; `load_from` is its last
# checkpoint) with L1 + lambda * L_VGG(conv5_4) + eta * L_G and an alternately trained
# discriminator, as configs/hidiff_pe/hidiff_pe{1,2}_gopro.py do on GoPro. PE-1's recipe
# (lambda = 1e-2, eta = 5e-3, Adam 1e-4, betas (0.9, 0.99)) for 200 iterations on the 64x64
# crops and batch 4 of the synthetic base. (PE-2's lambda = eta = 1 overwhelm the L1 term of
# this small model within a few hundred iterations: PSNR 25.4 -> 20.5 dB in 200.)
#   python tools/train.py configs/hidiff_demo.py
#   python tools/train.py configs/hidiff_pe/hidiff_pe_demo.py
# `vgg_path` must name a torchvision-format VGG-19 state dict (docs/perceptual.md).
_base_ = ['../hidiff_demo.py']

experiment_name = 'hidiff_pe_demo'
work_dir = f'./work_dirs/{experiment_name}'
load_from = './work_dirs/hidiff_demo/iter_600.pth'
vgg_path = 'checkpoints/vgg19-dcbb9e9d.pth'

model = dict(
    _delete_=True,  # the demo HIDiff's networks, without its stage and prior loss
    type='HIDiffGAN',
    generator={{_base_.model.generator}},
    prior_head={{_base_.model.prior_head}},
    data_preprocessor={{_base_.model.data_preprocessor}},
    finetune_prior=True,
    discriminator=dict(
        type='VGGStyleDiscriminator', in_channels=3, mid_channels=16, input_size=64,
        num_stages=4),
    pixel_loss=dict(type='L1Loss', loss_weight=1.0, reduction='mean'),
    perceptual_loss=dict(
        type='LocalPerceptualLoss', vgg_path=vgg_path, vgg_type='vgg19',
        layer_weights={'conv5_4': 1.0}, perceptual_weight=1e-2, style_weight=0.),
    gan_loss=dict(
        type='GANLoss', gan_type='vanilla', loss_weight=5e-3, real_label_val=1.0,
        fake_label_val=0.0),
    train_cfg=dict(disc_steps=1, disc_init_steps=0, disc_repeat=1))

model_wrapper_cfg = dict(
    type='MMSeparateDistributedDataParallel', broadcast_buffers=False,
    find_unused_parameters=False)

optim_wrapper = dict(
    _delete_=True,
    constructor='MultiOptimWrapperConstructor',
    generator=dict(
        type='OptimWrapper', modules=['generator', 'prior_head'],
        optimizer=dict(type='Adam', lr=1e-4, betas=(0.9, 0.99))),
    discriminator=dict(
        type='OptimWrapper', modules='discriminator',
        optimizer=dict(type='Adam', lr=1e-4, betas=(0.9, 0.99))))
param_scheduler = None  # constant lr

train_cfg = dict(type='IterBasedTrainLoop', max_iters=200, val_interval=100)
default_hooks = dict(
    checkpoint=dict(interval=100, max_keep_ckpts=2, save_best=None), logger=dict(interval=10))
custom_hooks = [dict(type='ExactResumeHook')]
