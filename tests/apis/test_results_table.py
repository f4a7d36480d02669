# Copyright (c) hidiff_mm contributors. All rights reserved.
"""The results table: published numbers from the metafile beside measured metrics."""
import json

import pytest
from apis_helpers import REPO

from hidiff_mm.apis import (build_results_table, load_paper_results, results_table_markdown,
                            write_results_table)
from hidiff_mm.utils.errors import InputError

METAFILE = str(REPO / 'configs' / 'hidiff' / 'metafile.yml')
SPEC = dict(
    title='T',
    paper=dict(metafile=METAFILE, model='hidiff_gopro_official', source='Table 2'),
    rows=[
        dict(dataset='GoPro', protocol='p1', metrics=dict(PSNR='GoPro/PSNR',
                                                          SSIM='GoPro/MATLABSSIM'),
             extra=dict(SSIM_per_channel='GoPro/SSIM')),
        dict(dataset='RealBlur-J', protocol='p2',
             metrics=dict(PSNR='RealBlurJ/AlignedPSNR', SSIM='RealBlurJ/AlignedSSIM')),
    ])


def test_paper_numbers_come_from_the_metafile():
    paper = load_paper_results(METAFILE, 'hidiff_gopro_official')
    assert paper == {'GoPro': dict(PSNR=33.33, SSIM=0.964), 'HIDE': dict(PSNR=31.46, SSIM=0.945),
                     'RealBlur-R': dict(PSNR=36.28, SSIM=0.958),
                     'RealBlur-J': dict(PSNR=29.15, SSIM=0.890)}
    assert load_paper_results(METAFILE, 'hidiff_realblur_j_official') == {
        'RealBlur-J': dict(PSNR=33.70, SSIM=0.941)}
    with pytest.raises(InputError, match='nope'):
        load_paper_results(METAFILE, 'nope')


def test_table(tmp_path):
    metrics = {'GoPro/PSNR': 30.0, 'GoPro/MATLABSSIM': 0.9, 'GoPro/SSIM': 0.89,
               'RealBlurJ/AlignedPSNR': float('inf')}  # RealBlurJ/AlignedSSIM missing
    table = build_results_table(metrics, SPEC, [3, 2], dict(checkpoint='c.pth'))
    gopro, realblur = table['rows']
    assert gopro['ours'] == dict(PSNR=30.0, SSIM=0.9) and gopro['num_images'] == 3
    assert gopro['paper'] == dict(PSNR=33.33, SSIM=0.964)
    assert gopro['delta']['PSNR'] == pytest.approx(-3.33)
    assert gopro['extra'] == dict(SSIM_per_channel=0.89)
    assert realblur['ours']['SSIM'] is None and realblur['delta'] == dict(PSNR=None, SSIM=None)
    md = results_table_markdown(table)
    lines = md.splitlines()
    assert lines[2].startswith('| Dataset | Images | PSNR (ours) | PSNR (paper) | Δ PSNR |')
    assert '| GoPro | 3 | 30.00 | 33.33 | -3.33 | 0.9000 | 0.9640 | -0.0640 | 0.8900 | p1 |' in md
    assert '| RealBlur-J | 2 | inf | 29.15 | – | – | 0.8900 | – | – | p2 |' in md
    assert '- paper source: Table 2' in md and '- checkpoint: c.pth' in md
    md_path, json_path = write_results_table(table, str(tmp_path / 'res'))
    assert md_path.endswith('res_table.md') and open(md_path).read() == md
    assert json.loads(open(json_path).read())['rows'][0]['paper']['SSIM'] == 0.964
