# RealBlur-J (Rim et al., ECCV 2020) as the official HI-Diff RealBlur-J recipes use it:
# - train: full frames of RealBlur/train/RealBlur_J, a paired random 384x384 crop and the 8-way
#   dihedral augmentation, 8 pairs per process (64 on the recipe's 8 processes; the recipe's
#   train loop loads 64 / world size per process; the progressive schedule is a training hook).
# - val: RealBlur/test/RealBlur_J, i.e. the test set itself (as in the official configs; do not
#   use it for checkpoint selection), PSNR only.
# - test: test/RealBlur_J with the paper's protocol (evaluate_realblur.py: ECC-aligned PSNR/SSIM,
#   'RealBlurJ/AlignedPSNR', 'RealBlurJ/AlignedSSIM') and MMagic's unaligned PSNR/SSIM beside
#   them ('RealBlurJ/PSNR', 'RealBlurJ/SSIM').
# Images load as RGB uint8; the model's DataPreprocessor (mean 0, std 255) scales them to [0, 1].
# See docs/datasets.md for the folder layout. realblur_r.py changes the folders and prefixes.
# custom_imports and the loops (MultiValLoop / MultiTestLoop) come from the runtime and
# schedule bases.

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
        metainfo=dict(dataset_type='RealBlur_J', task_name='deblurring'),
        data_root='data/RealBlur/train/RealBlur_J',
        data_prefix=dict(img='input', gt='target'),
        pipeline=train_pipeline))

val_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=False,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='PairedDeblurDataset',
        metainfo=dict(dataset_type='RealBlur_J', task_name='deblurring'),
        data_root='data/RealBlur/test/RealBlur_J',
        data_prefix=dict(img='input', gt='target'),
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
        metainfo=dict(dataset_type='RealBlur_J', task_name='deblurring'),
        data_root='data/test/RealBlur_J',
        data_prefix=dict(img='input', gt='target'),
        test_mode=True,
        pipeline=test_pipeline))

val_evaluator = [dict(type='PSNR')]
test_evaluator = [
    dict(type='RealBlurAligned', prefix='RealBlurJ'),
    dict(type='PSNR', prefix='RealBlurJ'),
    dict(type='SSIM', prefix='RealBlurJ'),
]
