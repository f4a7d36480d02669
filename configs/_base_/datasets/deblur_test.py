# The four motion-deblurring test sets of the HI-Diff paper for MultiTestLoop, in the layout of
# the official options/test/GoPro.yml: GoPro from GoPro/test, HIDE and RealBlur-J/R from test/.
# The paper's protocols, one prefix per set: GoPro/HIDE MATLAB psnr/ssim on the 8-bit RGB
# outputs ('GoPro/MATLABPSNR', 'HIDE/MATLABSSIM', ...), RealBlur ECC-aligned PSNR/SSIM
# ('RealBlurJ/AlignedPSNR', ...), each with MMagic's PSNR/SSIM beside them ('GoPro/PSNR', ...).
# Images load as RGB uint8; the model's DataPreprocessor scales them to [0, 1].
# custom_imports and the loops (MultiValLoop / MultiTestLoop) come from the runtime and
# schedule bases.

test_pipeline = [
    dict(
        type='LoadImagePair',
        keys=['img', 'gt'],
        color_type='color',
        channel_order='rgb',
        imdecode_backend='cv2'),
    dict(type='PackInputs'),
]

gopro_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=False,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='PairedDeblurDataset',
        metainfo=dict(dataset_type='GoPro', task_name='deblurring'),
        data_root='data/GoPro/test',
        data_prefix=dict(img='input', gt='target'),
        test_mode=True,
        pipeline=test_pipeline))
hide_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=False,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='PairedDeblurDataset',
        metainfo=dict(dataset_type='HIDE', task_name='deblurring'),
        data_root='data/test/HIDE',
        data_prefix=dict(img='input', gt='target'),
        test_mode=True,
        pipeline=test_pipeline))
realblurj_dataloader = dict(
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
realblurr_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=False,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='PairedDeblurDataset',
        metainfo=dict(dataset_type='RealBlur_R', task_name='deblurring'),
        data_root='data/test/RealBlur_R',
        data_prefix=dict(img='input', gt='target'),
        test_mode=True,
        pipeline=test_pipeline))

test_dataloader = [gopro_dataloader, hide_dataloader, realblurj_dataloader, realblurr_dataloader]
test_evaluator = [
    [
        dict(type='MATLABPSNR', prefix='GoPro'),
        dict(type='MATLABSSIM', prefix='GoPro'),
        dict(type='PSNR', prefix='GoPro'),
        dict(type='SSIM', prefix='GoPro'),
    ],
    [
        dict(type='MATLABPSNR', prefix='HIDE'),
        dict(type='MATLABSSIM', prefix='HIDE'),
        dict(type='PSNR', prefix='HIDE'),
        dict(type='SSIM', prefix='HIDE'),
    ],
    [
        dict(type='RealBlurAligned', prefix='RealBlurJ'),
        dict(type='PSNR', prefix='RealBlurJ'),
        dict(type='SSIM', prefix='RealBlurJ'),
    ],
    [
        dict(type='RealBlurAligned', prefix='RealBlurR'),
        dict(type='PSNR', prefix='RealBlurR'),
        dict(type='SSIM', prefix='RealBlurR'),
    ],
]
