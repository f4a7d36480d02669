# RealBlur-J (Rim et al., ECCV 2020) as the official HI-Diff RealBlur-J recipes use it:
# - train: full frames of RealBlur/train/RealBlur_J, a paired random 384x384 crop and the 8-way
#   dihedral augmentation, 16 pairs per GPU (progressive schedule: a training hook).
# - val: RealBlur/test/RealBlur_J, i.e. the test set itself (as in the official configs; do not
#   use it for checkpoint selection), PSNR only.
# - test: test/RealBlur_J, PSNR/SSIM on RGB without alignment, prefix 'RealBlurJ'. The paper's
#   numbers use ECC alignment (evaluate_realblur.py), so they are not directly comparable.
# Images load as RGB uint8; the model's DataPreprocessor (mean 0, std 255) scales them to [0, 1].
# See docs/datasets.md for the folder layout. realblur_r.py changes only the folders and prefix.
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
    batch_size=16,
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
test_evaluator = [dict(type='PSNR', prefix='RealBlurJ'), dict(type='SSIM', prefix='RealBlurJ')]
