# The procedural blur set written by tools/make_synthetic_blur.py (default data/synthetic,
# 128x128 pairs in the GoPro layout): train on train/ with a paired random 64x64 crop and the
# 8-way dihedral augmentation; validate (PSNR, SSIM; no prefix) and test (prefix 'Synthetic')
# on test/. Sized for CPU demos and smoke tests.
# Images load as RGB uint8; the model's DataPreprocessor (mean 0, std 255) scales them to [0, 1].
# custom_imports and the loops (MultiValLoop / MultiTestLoop) come from the runtime and
# schedule bases.

data_root = 'data/synthetic'
load_pair = dict(
    type='LoadImagePair',
    keys=['img', 'gt'],
    color_type='color',
    channel_order='rgb',
    imdecode_backend='cv2')

train_pipeline = [
    load_pair,
    dict(type='SetValues', dictionary=dict(scale=1)),
    dict(type='PairedRandomCrop', gt_patch_size=64),
    dict(type='RandomDihedral', keys=['img', 'gt']),
    dict(type='PackInputs'),
]
test_pipeline = [load_pair, dict(type='PackInputs')]

train_dataloader = dict(
    batch_size=4,
    num_workers=2,
    persistent_workers=False,
    drop_last=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type='PairedDeblurDataset',
        metainfo=dict(dataset_type='synthetic', task_name='deblurring'),
        data_root=f'{data_root}/train',
        data_prefix=dict(img='input', gt='target'),
        pipeline=train_pipeline))

val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=False,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='PairedDeblurDataset',
        metainfo=dict(dataset_type='synthetic', task_name='deblurring'),
        data_root=f'{data_root}/test',
        data_prefix=dict(img='input', gt='target'),
        test_mode=True,
        pipeline=test_pipeline))
test_dataloader = val_dataloader

val_evaluator = [dict(type='PSNR'), dict(type='SSIM')]
test_evaluator = [dict(type='PSNR', prefix='Synthetic'), dict(type='SSIM', prefix='Synthetic')]
