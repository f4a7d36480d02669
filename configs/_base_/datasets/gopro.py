# GoPro (Nah et al., CVPR 2017) as the official HI-Diff GoPro recipes use it:
# - train: the 512x512 crops written by tools/dataset_converters/gopro_patches.py, a paired
#   random 384x384 crop and the 8-way dihedral augmentation, 8 pairs per process (shuffled per
#   epoch, last incomplete batch dropped): 64 in all on the 8 processes the recipe assumes, as
#   the official 4 GPUs x 16. The recipe's train loop (AccumulatingIterBasedTrainLoop,
#   total_batch_size=64) replaces the 8 by 64 / world size, so fewer processes load as much.
#   The progressive patch/batch schedule (128 -> 384) is a training hook that sub-samples these
#   batches; it is not part of the data config.
# - val: the centred 256x256 crops of the test frames, PSNR only (no prefix, so that
#   save_best='PSNR' finds it).
# - test: the 1111 full test frames with the paper's protocol (evaluate_gopro_hide.m: MATLAB
#   psnr/ssim on the 8-bit RGB outputs: 'GoPro/MATLABPSNR', 'GoPro/MATLABSSIM') and MMagic's
#   float PSNR / per-channel SSIM beside them ('GoPro/PSNR', 'GoPro/SSIM').
# Images load as RGB uint8; the model's DataPreprocessor (mean 0, std 255) scales them to [0, 1].
# See docs/datasets.md for the folder layout.
# custom_imports and the loops (MultiValLoop / MultiTestLoop) come from the runtime and
# schedule bases.

data_root = 'data/GoPro'
load_pair = dict(
    type='LoadImagePair',
    keys=['img', 'gt'],
    color_type='color',
    channel_order='rgb',
    imdecode_backend='cv2')

train_pipeline = [
    load_pair,
    dict(type='SetValues', dictionary=dict(scale=1)),
    dict(type='PairedRandomCrop', gt_patch_size=384),
    dict(type='RandomDihedral', keys=['img', 'gt']),
    dict(type='PackInputs'),
]
test_pipeline = [load_pair, dict(type='PackInputs')]

train_dataloader = dict(
    batch_size=8,
    num_workers=4,
    persistent_workers=False,
    drop_last=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type='PairedDeblurDataset',
        metainfo=dict(dataset_type='GoPro', task_name='deblurring'),
        data_root=f'{data_root}/crop/train',
        data_prefix=dict(img='input_crops', gt='target_crops'),
        pipeline=train_pipeline))

val_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=False,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='PairedDeblurDataset',
        metainfo=dict(dataset_type='GoPro', task_name='deblurring'),
        data_root=f'{data_root}/crop/val',
        data_prefix=dict(img='input_crops', gt='target_crops'),
        test_mode=True,
        pipeline=test_pipeline))

test_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=False,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='PairedDeblurDataset',
        metainfo=dict(dataset_type='GoPro', task_name='deblurring'),
        data_root=f'{data_root}/test',
        data_prefix=dict(img='input', gt='target'),
        test_mode=True,
        pipeline=test_pipeline))

val_evaluator = [dict(type='PSNR')]
test_evaluator = [
    dict(type='MATLABPSNR', prefix='GoPro'),
    dict(type='MATLABSSIM', prefix='GoPro'),
    dict(type='PSNR', prefix='GoPro'),
    dict(type='SSIM', prefix='GoPro'),
]
