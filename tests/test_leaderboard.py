# Copyright (c) hidiff_mm contributors. All rights reserved.
"""One ``tools/test.py`` call with ``configs/hidiff_leaderboard_gopro.py`` over tiny generated
GoPro / HIDE / RealBlur-J / RealBlur-R sets in the published layouts writes the metrics and the
results table (Markdown + JSON) with the paper's numbers beside ours.

The tiny checkpoint has a zero output convolution, so the model returns its input exactly and
every metric can be recomputed here from the blurry/sharp PNGs alone.
"""
import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import DictAction

from hidiff_mm.apis import init_model
from hidiff_mm.datasets.synthetic import make_blur_pair
from hidiff_mm.evaluation.metrics import matlab_ssim, realblur_metrics

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / 'configs' / 'hidiff_leaderboard_gopro.py'
# dataset name in the table, folder (published layout), metric prefix
SETS = [('GoPro', 'GoPro/test', 'GoPro'), ('HIDE', 'test/HIDE', 'HIDE'),
        ('RealBlur-J', 'test/RealBlur_J', 'RealBlurJ'),
        ('RealBlur-R', 'test/RealBlur_R', 'RealBlurR')]
TINY = [
    'model.generator.dim=8', 'model.generator.num_blocks=[1,1,1,1]',
    'model.generator.num_refinement_blocks=1', 'model.generator.prior_channels=16',
    'model.prior_head.encoder_s1.embed_dim=4', 'model.prior_head.encoder_s1.num_blocks=1',
    'model.prior_head.encoder_s2.embed_dim=4', 'model.prior_head.encoder_s2.num_blocks=1',
    'model.prior_head.denoiser.prior_channels=16', 'model.prior_head.denoiser.inner_channels=16'
]


def _write_sets(root: Path, pairs: int = 2, size: int = 44):
    """Tiny blurred/sharp PNG pairs in each layout, with tools/make_synthetic_blur.py's model."""
    for k, (_, folder, _) in enumerate(SETS):
        for sub in ('input', 'target'):
            (root / folder / sub).mkdir(parents=True)
        for i in range(pairs):
            blur, sharp = make_blur_pair(np.random.default_rng([7, k, i]), size,
                                         kernel_sizes=(3, 7))
            for sub, img in (('input', blur), ('target', sharp)):
                cv2.imwrite(str(root / folder / sub / f'{i:03d}.png'),
                            cv2.cvtColor(img, cv2.COLOR_RGB2BGR))


def _identity_checkpoint(path: Path):
    parser = argparse.ArgumentParser()
    parser.add_argument('--o', nargs='+', action=DictAction)
    options = parser.parse_args(['--o', *TINY]).o
    torch.manual_seed(0)
    model = init_model(str(CONFIG), cfg_options=options)
    model.generator.output.weight.data.zero_()  # output = conv(...) + input = input
    torch.save(dict(meta=dict(), state_dict=model.state_dict()), path)


def _expected(root: Path, folder: str, realblur: bool):
    values = []
    for name in sorted(os.listdir(root / folder / 'input')):
        pred = cv2.imread(str(root / folder / 'input' / name))[..., ::-1]
        gt = cv2.imread(str(root / folder / 'target' / name))[..., ::-1]
        if realblur:
            values.append(realblur_metrics(pred, gt))
        else:
            mse = np.mean((pred.astype(np.float64) - gt) ** 2)
            values.append((10 * np.log10(255.**2 / mse), matlab_ssim(pred, gt)))
    return np.mean(values, axis=0)


def test_leaderboard_table(tmp_path):
    data = tmp_path / 'data'
    _write_sets(data)
    checkpoint = tmp_path / 'tiny.pth'
    _identity_checkpoint(checkpoint)
    options = list(TINY)
    for i, (_, folder, _) in enumerate(SETS):
        options += [f'test_dataloader.{i}.dataset.data_root={data / folder}',
                    f'test_dataloader.{i}.num_workers=0']
    out = tmp_path / 'results.json'
    env = dict(os.environ, OMP_NUM_THREADS='1')
    env['PYTHONPATH'] = os.pathsep.join(filter(None, [str(REPO), env.get('PYTHONPATH')]))
    proc = subprocess.run(
        [sys.executable, str(REPO / 'tools' / 'test.py'), str(CONFIG), str(checkpoint),
         '--work-dir', str(tmp_path / 'work'), '--out', str(out), '--cfg-options', *options],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        timeout=240)
    assert proc.returncode == 0, proc.stdout[-6000:]

    metrics = json.loads(out.read_text())
    assert {'GoPro/PSNR', 'GoPro/SSIM', 'GoPro/MATLABPSNR', 'GoPro/MATLABSSIM',
            'HIDE/MATLABPSNR', 'HIDE/MATLABSSIM', 'RealBlurJ/AlignedPSNR', 'RealBlurJ/PSNR',
            'RealBlurR/AlignedSSIM', 'RealBlurR/SSIM'} <= set(metrics)
    table = json.loads((tmp_path / 'results_table.json').read_text())
    markdown = (tmp_path / 'results_table.md').read_text()
    assert 'paper source: Chen et al., NeurIPS 2023, Table 2' in markdown
    assert table['checkpoint'] == str(checkpoint)
    paper = {'GoPro': (33.33, 0.964), 'HIDE': (31.46, 0.945), 'RealBlur-J': (29.15, 0.890),
             'RealBlur-R': (36.28, 0.958)}
    assert [row['dataset'] for row in table['rows']] == [name for name, _, _ in SETS]
    for row, (name, folder, prefix) in zip(table['rows'], SETS):
        realblur = name.startswith('RealBlur')
        psnr, ssim = _expected(data, folder, realblur)
        assert row['num_images'] == 2
        assert row['paper'] == dict(PSNR=paper[name][0], SSIM=paper[name][1])
        assert row['ours']['PSNR'] == pytest.approx(psnr, abs=1e-3)
        assert row['ours']['SSIM'] == pytest.approx(ssim, abs=1e-6)
        assert row['delta']['PSNR'] == pytest.approx(psnr - paper[name][0], abs=1e-3)
        key = 'AlignedPSNR' if realblur else 'MATLABPSNR'
        assert metrics[f'{prefix}/{key}'] == pytest.approx(psnr, abs=1e-3)
        assert f'| {name} | 2 | {row["ours"]["PSNR"]:.2f} | {paper[name][0]:.2f} |' in markdown
