# HI-Diff-PE-2 on GoPro (seed report §1.2, Tables 2/3: LPIPS 0.044, DISTS 0.029, NIQE 3.30,
# PSNR 32.84): PE-1 with lambda = eta = 1 for 50k iterations:
#   L_total = L1 + 1 * L_VGG + 1 * L_G
# Adam lr 1e-4; the report gives no betas for PE-2, so Adam's defaults (0.9, 0.999) are used
# (PE-1 states (0.9, 0.99)). Global batch 8 (4 GPUs x 2) of 384x384 patches, constant lr.
#   bash tools/dist_train.sh configs/hidiff_pe/hidiff_pe2_gopro.py 4
_base_ = ['./hidiff_pe1_gopro.py']

experiment_name = 'hidiff_pe2_gopro'
work_dir = f'./work_dirs/{experiment_name}'

model = dict(
    perceptual_loss=dict(perceptual_weight=1.0),  # lambda
    gan_loss=dict(loss_weight=1.0))  # eta

optim_wrapper = dict(
    generator=dict(optimizer=dict(type='Adam', lr=1e-4, betas=(0.9, 0.999))),
    discriminator=dict(optimizer=dict(type='Adam', lr=1e-4, betas=(0.9, 0.999))))

train_cfg = dict(type='IterBasedTrainLoop', max_iters=50000, val_interval=5000)
default_hooks = dict(checkpoint=dict(interval=5000))
