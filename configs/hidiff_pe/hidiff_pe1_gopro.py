# HI-Diff-PE-1 on GoPro (seed report §1.2, Tables 2/3: LPIPS 0.051, DISTS 0.031, NIQE 3.53,
# PSNR 33.27): fine-tune a trained HI-Diff (`load_from`: the stage-2 checkpoint) with
#   L_total = L1 + 1e-2 * L_VGG + 5e-3 * L_G
# L_VGG: L1 between VGG-19 conv5_4 features (4th conv before the 5th max-pool, before its ReLU,
# ESRGAN's choice; ImageNet mean/std on [0, 1] RGB) of output and sharp image; L_G: the generator
# side of the vanilla GAN (BCE with logits, "real" target), the discriminator trained alternately
# (HIDiffGAN, MMagic's SRGAN pattern). The GAN's generator is HI-Diff's whole blind inference path
# (Transformer + stage-2 encoder + denoiser, T-step chain from z_T ~ N(0, I)); the stage-1 encoder
# is unused and frozen. Adam lr 1e-4, betas (0.9, 0.99), constant lr, no gradient clipping,
# 1k iterations, global batch 8 (4 GPUs x 2) of 384x384 patches:
#   bash tools/dist_train.sh configs/hidiff_pe/hidiff_pe1_gopro.py 4
# Local weight files (nothing is downloaded; see docs/perceptual.md and docs/metrics.md):
# torchvision's ImageNet VGG-19 for the loss, AlexNet / VGG-16 for the LPIPS / DISTS test metrics.
_base_ = [
    '../_base_/hidiff_runtime.py',
    '../_base_/models/hidiff_gopro.py',
    '../_base_/datasets/gopro.py',
]

experiment_name = 'hidiff_pe1_gopro'
work_dir = f'./work_dirs/{experiment_name}'
load_from = './work_dirs/hidiff_s2_gopro/iter_300000.pth'

vgg_path = 'checkpoints/vgg19-dcbb9e9d.pth'
lpips_backbone_path = 'checkpoints/alexnet-owt-7be5be79.pth'
dists_backbone_path = 'checkpoints/vgg16-397923af.pth'

# The HI-Diff model config is not inherited as a whole (HIDiffGAN takes no stage or prior loss):
# its networks and preprocessor are.
model = dict(
    _delete_=True,
    type='HIDiffGAN',
    generator={{_base_.model.generator}},
    prior_head={{_base_.model.prior_head}},
    data_preprocessor={{_base_.model.data_preprocessor}},
    finetune_prior=True,  # False: train the Transformer only, prior chain frozen
    # ESRGAN's VGG-style discriminator with a 6th stride-2 stage: 384 -> 6x6 head
    discriminator=dict(
        type='VGGStyleDiscriminator', in_channels=3, mid_channels=64, input_size=384,
        num_stages=6),
    pixel_loss=dict(type='L1Loss', loss_weight=1.0, reduction='mean'),
    perceptual_loss=dict(
        type='LocalPerceptualLoss',
        vgg_path=vgg_path,
        vgg_type='vgg19',
        layer_weights={'conv5_4': 1.0},
        perceptual_weight=1e-2,  # lambda
        style_weight=0.,
        use_input_norm=True,
        norm_img=False,
        criterion='l1'),
    gan_loss=dict(
        type='GANLoss',
        gan_type='vanilla',
        loss_weight=5e-3,  # eta (generator term only; the discriminator loss is unweighted)
        real_label_val=1.0,
        fake_label_val=0.0),
    train_cfg=dict(disc_steps=1, disc_init_steps=0, disc_repeat=1))

# one DDP per sub-network; MMEngine's default wrapper would bypass HIDiffGAN.train_step
model_wrapper_cfg = dict(
    type='MMSeparateDistributedDataParallel', broadcast_buffers=False,
    find_unused_parameters=False)

optim_wrapper = dict(
    constructor='MultiOptimWrapperConstructor',
    generator=dict(
        type='OptimWrapper',
        modules=['generator', 'prior_head'],  # parameters without gradients are skipped
        optimizer=dict(type='Adam', lr=1e-4, betas=(0.9, 0.99))),
    discriminator=dict(
        type='OptimWrapper',
        modules='discriminator',
        optimizer=dict(type='Adam', lr=1e-4, betas=(0.9, 0.99))))

train_cfg = dict(type='IterBasedTrainLoop', max_iters=1000, val_interval=500)
val_cfg = dict(type='MultiValLoop')
test_cfg = dict(type='MultiTestLoop')

# global batch 8 = 4 GPUs x 2 (on 8 GPUs use batch_size=1, on 1 GPU 8)
train_dataloader = dict(batch_size=2)

# Table 2's metrics; LPIPS/DISTS need the local backbone files above
test_evaluator = [
    dict(type='PSNR', prefix='GoPro'),
    dict(type='MATLABSSIM', prefix='GoPro'),
    dict(type='LPIPS', net='alex', backbone_path=lpips_backbone_path, prefix='GoPro'),
    dict(type='DISTS', backbone_path=dists_backbone_path, prefix='GoPro'),
    dict(type='NIQE', input_order='CHW', convert_to='y', prefix='GoPro'),
]

# a perceptual fine-tune is not selected by PSNR: keep the regular checkpoints only
default_hooks = dict(checkpoint=dict(interval=500, save_best=None))

custom_hooks = [
    dict(type='ExactResumeHook'),
    dict(type='BasicVisualizationHook', interval=1),
]
