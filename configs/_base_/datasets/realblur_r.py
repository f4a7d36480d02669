# RealBlur-R: realblur_j.py with the RealBlur_R folders and the test prefix 'RealBlurR'.
_base_ = ['./realblur_j.py']

train_dataloader = dict(
    dataset=dict(
        metainfo=dict(dataset_type='RealBlur_R', task_name='deblurring'),
        data_root='data/RealBlur/train/RealBlur_R'))
val_dataloader = dict(
    dataset=dict(
        metainfo=dict(dataset_type='RealBlur_R', task_name='deblurring'),
        data_root='data/RealBlur/test/RealBlur_R'))
test_dataloader = dict(
    dataset=dict(
        metainfo=dict(dataset_type='RealBlur_R', task_name='deblurring'),
        data_root='data/test/RealBlur_R'))
test_evaluator = [
    dict(type='RealBlurAligned', prefix='RealBlurR'),
    dict(type='PSNR', prefix='RealBlurR'),
    dict(type='SSIM', prefix='RealBlurR'),
]
