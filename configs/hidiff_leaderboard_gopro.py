# Test-only config: the GoPro-trained HI-Diff on the four test sets of the paper's Table 2
# (GoPro, HIDE, RealBlur-J, RealBlur-R) in one MultiTestLoop run, with the paper's protocols
# (the evaluators of _base_/datasets/deblur_test.py):
#   GoPro / HIDE: MATLAB psnr and 3-D ssim on the 8-bit RGB outputs (MATLABPSNR, MATLABSSIM,
#                 = evaluate_gopro_hide.m), plus MMagic's float PSNR / per-channel SSIM;
#   RealBlur-J/R: ECC-aligned PSNR / SSIM (RealBlurAligned, = evaluate_realblur.py).
# With --out the results table (paper numbers from configs/hidiff/metafile.yml beside ours) is
# written too:
#   python tools/test.py configs/hidiff_leaderboard_gopro.py checkpoints/hidiff_gopro_official.pth \
#       --out work_dirs/hidiff_leaderboard_gopro/results.json
#   -> results.json (all metrics), results_table.md, results_table.json
# Data layout: data/GoPro/test, data/test/{HIDE,RealBlur_J,RealBlur_R} (docs/datasets.md).
_base_ = [
    './_base_/hidiff_runtime.py',
    './_base_/models/hidiff_gopro.py',
    './_base_/datasets/deblur_test.py',
]

experiment_name = 'hidiff_leaderboard_gopro'
work_dir = f'./work_dirs/{experiment_name}'

# Blind prediction (stage-2 sampler); the stage-1 encoder is built but neither used nor loaded.
model = dict(stage=2)
# The converted official release (configs/hidiff/README.md); tools/test.py's CHECKPOINT wins.
load_from = 'checkpoints/hidiff_gopro_official.pth'

test_cfg = dict(type='MultiTestLoop')

# The table written next to --out (hidiff_mm.apis.results_table); rows follow test_dataloader.
_gopro_protocol = 'MATLAB psnr / 3-D ssim on 8-bit RGB (evaluate_gopro_hide.m)'
_realblur_protocol = 'ECC-aligned PSNR / SSIM (evaluate_realblur.py)'
results_table = dict(
    title='HI-Diff (trained on GoPro): ours vs. paper Table 2',
    paper=dict(
        metafile='{{ fileDirname }}/hidiff/metafile.yml',
        model='hidiff_gopro_official',
        source='Chen et al., NeurIPS 2023, Table 2 (GoPro-trained model)'),
    rows=[
        dict(dataset='GoPro', protocol=_gopro_protocol,
             metrics=dict(PSNR='GoPro/MATLABPSNR', SSIM='GoPro/MATLABSSIM'),
             extra=dict(PSNR_float='GoPro/PSNR', SSIM_per_channel='GoPro/SSIM')),
        dict(dataset='HIDE', protocol=_gopro_protocol,
             metrics=dict(PSNR='HIDE/MATLABPSNR', SSIM='HIDE/MATLABSSIM'),
             extra=dict(PSNR_float='HIDE/PSNR', SSIM_per_channel='HIDE/SSIM')),
        dict(dataset='RealBlur-J', protocol=_realblur_protocol,
             metrics=dict(PSNR='RealBlurJ/AlignedPSNR', SSIM='RealBlurJ/AlignedSSIM'),
             extra=dict(PSNR_unaligned='RealBlurJ/PSNR', SSIM_unaligned='RealBlurJ/SSIM')),
        dict(dataset='RealBlur-R', protocol=_realblur_protocol,
             metrics=dict(PSNR='RealBlurR/AlignedPSNR', SSIM='RealBlurR/AlignedSSIM'),
             extra=dict(PSNR_unaligned='RealBlurR/PSNR', SSIM_unaligned='RealBlurR/SSIM')),
    ])
