# Fine-tune HI-Diff on your own photos: pairs of a blurry photo and its sharp partner (any
# names, any sizes), starting from the official GoPro weights. How-to: docs/training.md, "Your
# own photos". In short:
#   python tools/dataset_converters/check_pairs.py BLURRY_DIR SHARP_DIR --out data/own
#   python tools/convert_official_checkpoint.py net_g.pth net_le_dm.pth net_d.pth \
#       --config configs/hidiff_finetune_own_data.py --out checkpoints/hidiff_gopro_official.pth
#   python tools/test.py configs/hidiff_finetune_own_data.py checkpoints/hidiff_gopro_official.pth
#   python tools/train.py configs/hidiff_finetune_own_data.py            # one GPU (or more)
#
# - Weights: every network in the converted file (load_from; the converter checked each key and
#   shape against this config): the Transformer and, as released, the stage-2 encoder and
#   the denoiser; the stage-1 encoder too when its file (net_le) is given.
# - Both stages, short: 10k iterations of stage 1 (Transformer + stage-1 encoder, which the
#   official release does not include and therefore starts fresh: 10x the learning rate), then
#   StageSwitchHook and 10k iterations of stage 2 (Transformer + stage-2 encoder + denoiser).
# - Learning rate: a tenth of the official 2e-4, cosine to 1e-7 within each stage; the official
#   AdamW (weight decay 1e-4) and grad-norm clip 0.01.
# - Batch: 8 random 256x256 crops per step (plus the 8 dihedral flips/rotations), in
#   micro-batches of 2 per process: one GPU accumulates 4 (the memory of the recipe's 384^2
#   phase), 4 GPUs none.
# - Validation every 2k iterations on the validation pairs, whole photos (tiled 512 px with one
#   prior per photo), with the leaderboard metrics MATLABPSNR / MATLABSSIM, beside the blurry
#   input's; blind (sampled prior) in both stages; the best MATLABPSNR checkpoint is kept.
_base_ = [
    './_base_/hidiff_runtime.py',
    './_base_/models/hidiff_gopro.py',
    './_base_/schedules/hidiff_300k.py',
    './_base_/datasets/gopro.py',
]

experiment_name = 'hidiff_finetune_own_data'
work_dir = f'./work_dirs/{experiment_name}'
load_from = 'checkpoints/hidiff_gopro_official.pth'

model = dict(test_cfg=dict(tile=512, tile_overlap=32))

optim_wrapper = dict(
    optimizer=dict(lr=2e-5),
    paramwise_cfg=dict(custom_keys={'prior_head.encoder_s1': dict(lr_mult=10.)}))
param_scheduler = [
    dict(type='CosineAnnealingLR', T_max=10000, eta_min=1e-7, begin=0, end=10000,
         by_epoch=False)
]
train_cfg = dict(
    type='AccumulatingIterBasedTrainLoop', max_iters=20000, val_interval=2000,
    total_batch_size=8)

# The GoPro data settings (gopro.py) on data/own, as check_pairs.py lays it out, with 256^2
# crops and an endless sampler (every step a full batch, however few the pairs).
data_root = 'data/own'
own = dict(
    metainfo=dict(dataset_type='own', task_name='deblurring'),
    data_prefix=dict(img='input', gt='target'))
train_pipeline = [
    {{_base_.load_pair}},
    dict(type='SetValues', dictionary=dict(scale=1)),
    dict(type='PairedRandomCrop', gt_patch_size=256),
    dict(type='RandomDihedral', keys=['img', 'gt']),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    sampler=dict(type='InfiniteSampler'),
    dataset=dict(own, data_root=f'{data_root}/train', pipeline=train_pipeline))
val_dataloader = dict(num_workers=2, dataset=dict(own, data_root=f'{data_root}/val'))
test_dataloader = val_dataloader

val_evaluator = [
    dict(type='MATLABPSNR'),
    dict(type='MATLABSSIM'),
    dict(type='MATLABPSNR', pred_key='input_img', prefix='blurry_input'),
    dict(type='MATLABSSIM', pred_key='input_img', prefix='blurry_input'),
]
test_evaluator = val_evaluator

default_hooks = dict(
    checkpoint=dict(interval=2000, max_keep_ckpts=2, save_best='MATLABPSNR', rule='greater'),
    logger=dict(interval=50))

custom_hooks = [
    dict(type='StageSwitchHook', switch_iter=10000),
    dict(type='ProgressivePatchHook', milestones=[10000], patch_sizes=[256], batch_sizes=[2],
         recipe_total_batch_sizes=[8]),
    dict(type='ExactResumeHook'),
]
